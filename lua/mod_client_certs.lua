-- mod_client_certs: XEP-0257 client certificate management and SASL
-- EXTERNAL login with those certificates (RFC 6120 section 6, XEP-0178).
--
-- Every fact about a certificate comes from the native library
-- client_certs.so; this file connects it to Prosody's events, sessions,
-- storage and logging.

local st = require "util.stanza";
local jid = require "util.jid";
local errors = require "util.error";
local usermanager = require "core.usermanager";
local utf8_valid = require "util.encodings".utf8.valid;

-- Loads client_certs.so from this module's folder, so that installing means
-- copying one folder, and falls back to package.cpath.
local function load_native()
	local path = module:get_directory() .. "/client_certs.so";
	local open, load_err = package.loadlib(path, "luaopen_client_certs");
	if open then
		return open();
	end
	local found, native = pcall(require, "client_certs");
	if found then
		return native;
	end
	error(("cannot load the native library: %s; and require 'client_certs' failed: %s"):format(load_err, native));
end

local native = load_native();

local host = module.host;

-- Options, read once at load.

local max_per_user = module:get_option_number("client_certs_max_per_user", 20);
local max_size = module:get_option_number("client_certs_max_size", native.default_max_size);
local require_xmpp_addr = module:get_option_boolean("client_certs_require_xmpp_addr", true);
local trusted_cas_path = module:get_option_path("client_certs_trusted_cas", nil, "config");
local index_path = module:get_option_path("client_certs_index_path", "client_certs.sqlite", "data");
local remove_expired_after = module:get_option_number("client_certs_remove_expired_after", nil);

if max_per_user < 1 or max_per_user % 1 ~= 0 then
	module:log("error", "client_certs_max_per_user must be a positive whole number, got %s; using 20", max_per_user);
	max_per_user = 20;
end
if max_size < 512 or max_size % 1 ~= 0 then
	module:log("error", "client_certs_max_size must be a whole number of bytes of at least 512, got %s; using %d",
		max_size, native.default_max_size);
	max_size = native.default_max_size;
end

if remove_expired_after ~= nil and (remove_expired_after < 0 or remove_expired_after % 1 ~= 0) then
	error(("client_certs_remove_expired_after must be a whole number of seconds (0 or more), got %s")
		:format(remove_expired_after));
end

local trust_anchors;
if trusted_cas_path then
	local file, open_err = io.open(trusted_cas_path, "rb");
	if not file then
		error(("client_certs_trusted_cas: cannot read %s: %s"):format(trusted_cas_path, open_err));
	end
	local bundle = file:read("*a");
	file:close();
	local anchors, _, message = native.load_trust_anchors(bundle, trusted_cas_path);
	if not anchors then
		error("client_certs_trusted_cas: " .. message);
	end
	trust_anchors = anchors;
	module:log("info", "Client certificates must be issued by one of %d CAs from %s", anchors.count, trusted_cas_path);
end

-- Checks that a TLS option lets clients present certificates, and logs a
-- warning naming what is missing. Without verify "peer", OpenSSL never asks
-- for a client certificate; Prosody 13 also needs verifyext lsec_continue,
-- or the handshake of a self-signed certificate fails before this module
-- sees it (Prosody 0.12 has these verifyext values by default).
local function check_tls_option(option)
	local ssl_config = module:get_option(option);
	local verify = type(ssl_config) == "table" and ssl_config.verify or nil;
	local has_peer = verify == "peer";
	if type(verify) == "table" then
		for _, flag in ipairs(verify) do
			if flag == "peer" then has_peer = true; end
		end
	end
	if not has_peer then
		module:log("warn", "%s has no verify = { \"peer\", \"client_once\" }: clients cannot present"
			.. " certificates, so SASL EXTERNAL is never offered", option);
	end

	local major = tonumber((prosody.version or ""):match("^(%d+)%."));
	if major and major >= 13 then
		local verifyext = type(ssl_config) == "table" and ssl_config.verifyext or nil;
		local has_continue = verifyext == "lsec_continue";
		if type(verifyext) == "table" then
			for _, flag in ipairs(verifyext) do
				if flag == "lsec_continue" then has_continue = true; end
			end
		end
		if not has_continue then
			module:log("warn", "%s has no verifyext = { \"lsec_continue\", \"lsec_ignore_purpose\" }:"
				.. " TLS handshakes with self-signed client certificates will fail", option);
		end
	end
end

check_tls_option("c2s_ssl");
local direct_tls_ports = module:get_option_array("c2s_direct_tls_ports", {});
if #direct_tls_ports > 0 then
	check_tls_option("c2s_direct_tls_ssl");
end

-- Longest certificate name accepted, in characters.
local max_name_length = 1023;

local xmlns_saslcert = "urn:xmpp:saslcert:1";
local xmlns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";

local store = module:open_store("client_certs");

-- Error conditions, one per code. Codes come from the native library
-- (certificate problems) or from this module (request and storage problems).
local conditions = {
	["malformed"] = { type = "modify", condition = "not-acceptable" };
	["too-large"] = { type = "modify", condition = "policy-violation" };
	["expired"] = { type = "modify", condition = "not-acceptable" };
	["not-yet-valid"] = { type = "modify", condition = "not-acceptable" };
	["no-xmpp-addr"] = { type = "modify", condition = "not-acceptable" };
	["wrong-jid"] = { type = "modify", condition = "not-acceptable" };
	["untrusted"] = { type = "modify", condition = "not-acceptable" };
	["bad-key-usage"] = { type = "modify", condition = "not-acceptable" };
	["bad-request"] = { type = "modify", condition = "bad-request" };
	["too-many"] = { type = "cancel", condition = "policy-violation" };
	["conflict"] = { type = "cancel", condition = "conflict" };
	["item-not-found"] = { type = "cancel", condition = "item-not-found" };
	["forbidden"] = { type = "auth", condition = "forbidden" };
	["storage-failed"] = { type = "wait", condition = "internal-server-error" };
};

-- Builds a util.error object for one of the codes above.
local function make_error(code, text)
	local template = conditions[code] or conditions["storage-failed"];
	return errors.new({ type = template.type, condition = template.condition, text = text }, { code = code });
end

local function now()
	return os.time();
end

-- Records

-- Parsed certificates of stored records, keyed by their x509cert text, so
-- that a login does not parse the same record twice.
local parsed_records = require "util.cache".new(1000);

-- Parses a stored record's certificate. Records written by the community
-- module hold x509cert as sent by the client (possibly with whitespace) and a
-- PEM copy; both parse here.
-- returns certificate userdata, or nil, code, message
local function parse_record(record)
	local text = record.x509cert or record.pem;
	if type(text) ~= "string" then
		return nil, "malformed", "record has no x509cert";
	end
	local cert = parsed_records:get(text);
	if cert then return cert; end
	local parsed, code, message = native.parse(text, math.max(max_size, native.default_max_size));
	if parsed then
		parsed_records:set(text, parsed);
	end
	return parsed, code, message;
end

-- Returns the SHA-256 fingerprint of a record, or nil when its certificate
-- does not parse.
local function record_fingerprint(record)
	if type(record.fingerprint) == "string" then
		return record.fingerprint;
	end
	-- COMPAT: the community module stored only a SHA-1 digest.
	local cert = parse_record(record);
	return cert and cert.fingerprint;
end

-- Loads one account's records.
-- returns table of records keyed by name, or nil, error
local function load_records(username)
	local records, err = store:get(username);
	if records == nil and err then
		module:log("error", "Failed to load client certificates of %s@%s: %s", username, host, err);
		return nil, make_error("storage-failed", "could not load certificates, try again later");
	end
	return records or {};
end

local function save_records(username, records)
	if next(records) == nil then
		records = nil;
	end
	local ok, err = store:set(username, records);
	if not ok then
		module:log("error", "Failed to save client certificates of %s@%s: %s", username, host, err);
		return nil, make_error("storage-failed", "could not save certificates, try again later");
	end
	return true;
end

-- Finds the record of an account that holds the certificate with this
-- fingerprint.
-- returns record, or nil
local function find_record(records, fingerprint)
	for _, record in pairs(records) do
		if record_fingerprint(record) == fingerprint then
			return record;
		end
	end
end

-- Fingerprint index

local index;

-- Calls a method of the index, logging a failure. The index is a cache of
-- storage, so a failure never stops the caller.
-- returns the method's result, or nil
local function index_call(method, ...)
	if not index then return nil; end
	local result, code, message = index[method](index, ...);
	if result == nil and code then
		module:log("error", "Fingerprint index %s (%s) failed: %s", index_path, method, message);
	end
	return result;
end

-- Returns the index row of a record, for put() and rebuild().
local function index_row(username, record, cert)
	return {
		username = username;
		name = record.name;
		fingerprint = cert.fingerprint;
		not_after = record.not_after or cert.not_after;
	};
end

-- Refills this host's rows from storage.
-- returns number of rows, or nil
local function rebuild_index()
	local started = os.clock();
	local rows = {};
	if not store.users then
		module:log("error", "Cannot rebuild the fingerprint index: this storage backend cannot list accounts");
		return nil;
	end
	for username in store:users() do
		local records = store:get(username) or {};
		for _, record in pairs(records) do
			local cert = parse_record(record);
			if cert then
				rows[#rows + 1] = index_row(username, record, cert);
			end
		end
	end
	local count = index_call("rebuild", host, rows, now());
	if count then
		module:log("info", "Rebuilt the fingerprint index of %s from storage: %d certificates in %.2f s",
			host, count, os.clock() - started);
	end
	return count;
end

-- Opens the process-wide index and rebuilds this host's rows if they are
-- missing.
local function open_index()
	local handle, state, message = native.open_index(index_path);
	if not handle then
		module:log("error", "Cannot open the fingerprint index %s: %s; certificates without an id-on-xmppAddr"
			.. " cannot log in until it opens (check the folder's permissions, then reload the module)",
			index_path, message);
		return;
	end
	if state == "recreated" then
		module:log("warn", "Fingerprint index %s was corrupt or of another version and was recreated", index_path);
	end
	index = handle;
	if not index_call("is_built", host) then
		rebuild_index();
	end
end

-- Returns the account that the index says holds a certificate, after
-- confirming it against storage.
-- returns username, record; or nil
local function indexed_owner(fingerprint)
	local row = index_call("lookup", host, fingerprint);
	if not row then return nil; end
	local records = load_records(row.username);
	local record = records and find_record(records, fingerprint);
	if not record then
		module:log("debug", "Fingerprint index row for %s on %s is stale", fingerprint, row.username);
		return nil;
	end
	return row.username, record;
end

-- Identity

-- Returns the prepped id-on-xmppAddr values of a certificate, logging those
-- that cannot name an account.
-- returns array of { bare = string, full = string, resource = string? }
local function certificate_jids(cert, log)
	log = log or module._log;
	local found = {};
	for _, reason in ipairs(cert.skipped_xmpp_addrs) do
		log("debug", "Ignoring an id-on-xmppAddr of certificate %s: %s", cert.fingerprint, reason);
	end
	for _, addr in ipairs(cert.xmpp_addrs) do
		local prepped = jid.prep(addr);
		if prepped and jid.node(prepped) then
			local bare = jid.bare(prepped);
			local _, _, resource = jid.split(prepped);
			found[#found + 1] = { bare = bare, full = prepped, resource = resource };
		else
			log("debug", "Ignoring id-on-xmppAddr %q of certificate %s: not a valid user JID", addr, cert.fingerprint);
		end
	end
	return found;
end

-- Returns the certificate's JIDs that belong to this host.
local function local_jids(cert, log)
	local found = {};
	for _, entry in ipairs(certificate_jids(cert, log)) do
		if jid.host(entry.bare) == host then
			found[#found + 1] = entry;
		end
	end
	return found;
end

-- Checks that a certificate may be registered on username@host.
-- returns true, or nil, code, message
local function check_identity(cert, username)
	local account = username .. "@" .. host;
	local jids = certificate_jids(cert);
	for _, entry in ipairs(jids) do
		if entry.bare == account then
			return true;
		end
	end
	if #jids > 0 then
		local names = {};
		for i, entry in ipairs(jids) do names[i] = entry.full; end
		return nil, "wrong-jid", ("certificate names %s in id-on-xmppAddr, not %s")
			:format(table.concat(names, ", "), account);
	end
	if require_xmpp_addr then
		return nil, "no-xmpp-addr", ("certificate has no usable id-on-xmppAddr;"
			.. " add an otherName 1.3.6.1.5.5.7.8.5 with the UTF8String %s"):format(account);
	end
	return true;
end

-- Runs every policy check that does not depend on stored data.
-- returns true, or nil, code, message
local function check_policy(cert, at)
	local ok, code, message = cert:check_validity(at);
	if not ok then return nil, code, message; end

	ok, code, message = cert:check_client_usage();
	if not ok then return nil, code, message; end

	if trust_anchors then
		ok, code, message = trust_anchors:verify(cert, at);
		if not ok then return nil, code, message; end
	end
	return true;
end

-- Sessions

-- Returns the full sessions of an account on this host.
local function user_sessions(username)
	local host_session = prosody.hosts[host];
	local user = host_session and host_session.sessions and host_session.sessions[username];
	return user and user.sessions or {};
end

-- Returns the resources of sessions logged in with the given certificate.
local function sessions_using(username, fingerprint)
	local found = {};
	for resource, session in pairs(user_sessions(username)) do
		if session.client_certs_fingerprint == fingerprint then
			found[#found + 1] = resource;
		end
	end
	table.sort(found);
	return found;
end

-- Management actions, shared by the XEP-0257 handlers and ad-hoc commands.

-- Checks whether a session may change the certificates of its account.
local function check_may_manage(session)
	if session and session.client_certs_no_management then
		return nil, make_error("forbidden",
			"this session logged in with a certificate that may not manage certificates");
	end
	return true;
end

-- Returns the number of characters of a UTF-8 string, or nil when it is not
-- valid UTF-8. (util.encodings.utf8.length counts bytes.)
local function utf8_length(text)
	if not utf8_valid(text) then
		return nil;
	end
	-- Every character has exactly one byte that is not a continuation byte.
	local _, count = text:gsub("[^\128-\191]", "");
	return count;
end

-- Validates a certificate name from a request.
local function check_name(name)
	if not name or name == "" then
		return nil, make_error("bad-request", "certificate name is missing or empty");
	end
	local length = utf8_length(name);
	if not length then
		return nil, make_error("bad-request", "certificate name is not valid UTF-8");
	end
	if length > max_name_length then
		return nil, make_error("bad-request",
			("certificate name is %d characters long, the limit is %d"):format(length, max_name_length));
	end
	return true;
end

-- Adds a certificate to an account.
-- returns record, or nil, error
local function add_certificate(username, name, x509cert, no_cert_management)
	local ok, err = check_name(name);
	if not ok then return nil, err; end
	if not x509cert or x509cert:match("^%s*$") then
		return nil, make_error("bad-request", "x509cert is missing or empty; send the certificate as base64 DER");
	end

	local cert, code, message = native.parse(x509cert, max_size);
	if not cert then return nil, make_error(code, message); end

	ok, code, message = check_policy(cert, now());
	if not ok then return nil, make_error(code, message); end

	ok, code, message = check_identity(cert, username);
	if not ok then return nil, make_error(code, message); end

	local records, load_err = load_records(username);
	if not records then return nil, load_err; end

	if records[name] then
		return nil, make_error("conflict", ("a certificate named %q already exists; choose another name"):format(name));
	end
	local existing = find_record(records, cert.fingerprint);
	if existing then
		return nil, make_error("conflict",
			("this certificate is already registered under the name %q"):format(existing.name or "?"));
	end
	local owner = indexed_owner(cert.fingerprint);
	if owner and owner ~= username then
		return nil, make_error("conflict", "this certificate is already registered on another account");
	end
	local count = 0;
	for _ in pairs(records) do count = count + 1; end
	if count >= max_per_user then
		return nil, make_error("too-many",
			("an account may hold at most %d certificates; disable one first"):format(max_per_user));
	end

	local record = {
		name = name;
		x509cert = cert.base64;
		fingerprint = cert.fingerprint;
		no_cert_management = no_cert_management and true or false;
		not_before = cert.not_before;
		not_after = cert.not_after;
		added = now();
	};
	records[name] = record;
	local saved, save_err = save_records(username, records);
	if not saved then return nil, save_err; end

	index_call("put", host, index_row(username, record, cert));
	module:log("info", "Certificate %q (SHA-256 %s) added to %s@%s", name, cert.fingerprint, username, host);
	return record;
end

-- Lists an account's certificates, sorted by name.
-- returns array of { name, x509cert, fingerprint, no_cert_management, resources }, or nil, error
local function list_certificates(username)
	local records, err = load_records(username);
	if not records then return nil, err; end
	local list = {};
	for name, record in pairs(records) do
		local fingerprint = record_fingerprint(record);
		list[#list + 1] = {
			name = record.name or name;
			x509cert = record.x509cert;
			fingerprint = fingerprint;
			no_cert_management = record.no_cert_management and true or false;
			not_after = record.not_after;
			resources = fingerprint and sessions_using(username, fingerprint) or {};
		};
	end
	table.sort(list, function (a, b) return a.name < b.name; end);
	return list;
end

-- Closes every stream of an account that logged in with a certificate.
local function close_sessions_using(username, fingerprint)
	local closed = 0;
	-- Collect first: closing a session removes it from the table.
	local targets = {};
	for _, session in pairs(user_sessions(username)) do
		if session.client_certs_fingerprint == fingerprint then
			targets[#targets + 1] = session;
		end
	end
	for _, session in ipairs(targets) do
		session:close({ condition = "not-authorized", text = "The client certificate of this session was revoked" });
		closed = closed + 1;
	end
	return closed;
end

-- Removes a certificate from an account; with revoke, also closes the
-- streams logged in with it.
-- returns record, or nil, error
local function remove_certificate(username, name, revoke)
	local ok, err = check_name(name);
	if not ok then return nil, err; end

	local records, load_err = load_records(username);
	if not records then return nil, load_err; end

	local record = records[name];
	if not record then
		return nil, make_error("item-not-found", ("no certificate named %q"):format(name));
	end
	records[name] = nil;
	local saved, save_err = save_records(username, records);
	if not saved then return nil, save_err; end

	local fingerprint = record_fingerprint(record);
	if fingerprint then
		index_call("remove", host, fingerprint);
	end
	if revoke then
		local closed = fingerprint and close_sessions_using(username, fingerprint) or 0;
		module:log("info", "Certificate %q (SHA-256 %s) revoked on %s@%s, %d sessions closed",
			name, fingerprint or "unknown", username, host, closed);
	else
		module:log("info", "Certificate %q (SHA-256 %s) disabled on %s@%s", name, fingerprint or "unknown", username, host);
	end
	return record;
end

module:depends("disco");
module:add_feature(xmlns_saslcert);

-- XEP-0257 handlers

-- Management over an unencrypted stream would expose the certificate list and
-- let a network attacker add a credential, so it requires TLS.
local function check_session(session)
	if not session.secure then
		return nil, make_error("forbidden", "certificate management requires an encrypted connection");
	end
	return true;
end

module:hook("iq-get/self/" .. xmlns_saslcert .. ":items", function (event)
	local origin, stanza = event.origin, event.stanza;
	local ok, err = check_session(origin);
	if not ok then
		origin.send(st.error_reply(stanza, err));
		return true;
	end

	local list, list_err = list_certificates(origin.username);
	if not list then
		origin.send(st.error_reply(stanza, list_err));
		return true;
	end

	local reply = st.reply(stanza):tag("items", { xmlns = xmlns_saslcert });
	for _, item in ipairs(list) do
		reply:tag("item")
			:text_tag("name", item.name)
			:text_tag("x509cert", item.x509cert or "");
		if #item.resources > 0 then
			reply:tag("users");
			for _, resource in ipairs(item.resources) do
				reply:text_tag("resource", resource);
			end
			reply:up();
		end
		reply:up();
	end
	origin.send(reply);
	return true;
end);

module:hook("iq-set/self/" .. xmlns_saslcert .. ":append", function (event)
	local origin, stanza = event.origin, event.stanza;
	local ok, err = check_session(origin);
	if ok then ok, err = check_may_manage(origin); end
	if not ok then
		origin.send(st.error_reply(stanza, err));
		return true;
	end

	local append = stanza.tags[1];
	local name = append:get_child_text("name");
	local x509cert = append:get_child_text("x509cert");
	local no_cert_management = append:get_child("no-cert-management") ~= nil;

	local record, add_err = add_certificate(origin.username, name, x509cert, no_cert_management);
	if not record then
		origin.log("debug", "Rejected certificate %q: %s", name, add_err.text);
		origin.send(st.error_reply(stanza, add_err));
		return true;
	end
	origin.send(st.reply(stanza));
	return true;
end);

local function handle_remove(event)
	local origin, stanza = event.origin, event.stanza;
	local ok, err = check_session(origin);
	if ok then ok, err = check_may_manage(origin); end
	if not ok then
		origin.send(st.error_reply(stanza, err));
		return true;
	end

	local action = stanza.tags[1];
	local name = action:get_child_text("name");
	local record, remove_err = remove_certificate(origin.username, name, action.name == "revoke");
	if not record then
		origin.send(st.error_reply(stanza, remove_err));
		return true;
	end
	origin.send(st.reply(stanza));
	return true;
end

module:hook("iq-set/self/" .. xmlns_saslcert .. ":disable", handle_remove);
module:hook("iq-set/self/" .. xmlns_saslcert .. ":revoke", handle_remove);

-- SASL EXTERNAL

-- Returns the certificate the client presented in TLS, parsed once per
-- connection, or nil when there is none.
local function peer_certificate(session)
	if session.client_certs_peer ~= nil then
		return session.client_certs_peer or nil;
	end
	-- Before STARTTLS there is no certificate yet; remember nothing.
	if not session.secure then
		return nil;
	end
	session.client_certs_peer = false;
	local log = session.log or module._log;

	-- A secure session without a TLS socket (BOSH or WebSocket behind a
	-- proxy) has no certificate; LuaSec errors are treated the same way.
	local got, pem = pcall(function ()
		local conn = session.conn;
		local sock = conn and conn.socket and conn:socket();
		local x509;
		if conn and conn.ssl_peercertificate then
			x509 = conn:ssl_peercertificate();
		elseif sock and sock.getpeercertificate then
			x509 = sock:getpeercertificate();
		end
		return x509 and x509:pem();
	end);
	if not got then
		log("debug", "Cannot read the client certificate: %s", pem);
		return nil;
	elseif not pem then
		return nil;
	end

	local cert, code, message = native.parse(pem, math.max(max_size, native.default_max_size));
	if not cert then
		log("warn", "Client certificate could not be parsed (%s): %s", code, message);
		return nil;
	end
	log("debug", "Client presented certificate %s", cert.fingerprint);
	session.client_certs_peer = cert;
	return cert;
end

-- Runs check_policy once per connection for the presented certificate. Only
-- the validity period depends on the time, so it alone is checked each time.
-- returns true, or nil, code, message
local function check_peer_policy(session, cert)
	local at = now();
	local cached = session.client_certs_policy;
	if not cached then
		local ok, code, message = check_policy(cert, at);
		cached = { ok = ok, code = code, message = message };
		session.client_certs_policy = cached;
	end
	if not cached.ok then
		return nil, cached.code, cached.message;
	end
	return cert:check_validity(at);
end

-- Finds the account that may log in with a certificate, given the authzid
-- the client sent (empty when it sent none).
-- returns username, record, resource; or nil, sasl condition, reason for the log
local function resolve_account(cert, authzid)
	local candidates = local_jids(cert);
	local username, resource;

	if authzid == "" then
		-- XEP-0178 section 2: without an authzid the server derives the
		-- account from the certificate, which needs exactly one JID of
		-- this host.
		if #candidates > 1 then
			return nil, "invalid-authzid", "certificate names several accounts of this host and no authzid was sent";
		elseif #candidates == 0 then
			local owner, record = indexed_owner(cert.fingerprint);
			if not owner then
				return nil, "not-authorized", "certificate names no account of this host and is not registered";
			end
			return owner, record, nil;
		end
		username, resource = jid.node(candidates[1].bare), candidates[1].resource;
	else
		local prepped = jid.prep(authzid);
		if not prepped then
			return nil, "invalid-authzid", ("authzid %q is not a valid JID"):format(authzid);
		end
		local node, authz_host = jid.split(prepped);
		if not node or authz_host ~= host then
			return nil, "invalid-authzid", ("authzid %q is not an account of this host"):format(authzid);
		end
		username = node;
		local named = #candidates == 0;
		for _, entry in ipairs(candidates) do
			if entry.bare == node .. "@" .. host then
				named, resource = true, entry.resource;
				break;
			end
		end
		if not named and require_xmpp_addr then
			return nil, "not-authorized", ("certificate does not name %s@%s"):format(node, host);
		end
	end

	local records = load_records(username);
	local record = records and find_record(records, cert.fingerprint);
	if not record then
		return nil, "not-authorized", ("certificate is not registered on %s@%s"):format(username, host);
	end
	return username, record, resource;
end

-- Decides a SASL EXTERNAL attempt.
-- returns username, or nil, sasl condition, reason for the log
local function decide_external(session, authzid)
	local cert = peer_certificate(session);
	if not cert then
		return nil, "not-authorized", "no client certificate was presented";
	end

	local username, record, resource = resolve_account(cert, authzid);
	if not username then
		return nil, record, resource;
	end

	local ok, code, message = check_peer_policy(session, cert);
	if not ok then
		local condition = (code == "expired") and "credentials-expired" or "not-authorized";
		return nil, condition, message;
	end

	if not usermanager.user_exists(username, host) then
		return nil, "not-authorized", ("account %s@%s does not exist"):format(username, host);
	end
	if usermanager.user_is_enabled and not usermanager.user_is_enabled(username, host) then
		return nil, "account-disabled", ("account %s@%s is disabled"):format(username, host);
	end

	session.client_certs_pending = {
		username = username;
		name = record.name;
		fingerprint = cert.fingerprint;
		no_cert_management = record.no_cert_management and true or false;
		resource = resource;
	};
	return username;
end

-- Replaces the session's SASL handler with one that also offers EXTERNAL.
--
-- Core's EXTERNAL mechanism (util.sasl.external) has two gaps: an <auth/>
-- without initial response reaches it as nil, where RFC 6120 section 6.4.2
-- requires an empty challenge, and its credentials-expired branch returns an
-- invalid status. The wrapper's process() handles EXTERNAL itself and leaves
-- every other mechanism to the original handler.
local function add_external(session, handler)
	local mechanisms = {};
	for mechanism in pairs(handler.mechs or {}) do
		mechanisms[mechanism] = true;
	end
	mechanisms["EXTERNAL"] = true;

	local profile = setmetatable({
		mechanisms = mechanisms;
		external = function (authzid)
			local username, condition = decide_external(session, authzid or "");
			if username then return username, true; end
			return nil, condition;
		end;
	}, { __index = handler.profile });

	local wrapped = setmetatable({}, { __index = handler });
	wrapped.profile = profile;
	wrapped.mechs = mechanisms;
	wrapped.selected = nil;

	function wrapped:process(message)
		if self.selected ~= "EXTERNAL" then
			return handler.process(self, message);
		end
		if message == nil and not self.client_certs_challenged then
			self.client_certs_challenged = true;
			return "challenge", "";
		end
		local username, condition, reason = decide_external(session, message or "");
		if not username then
			local cert = peer_certificate(session);
			(session.log or module._log)("info", "Certificate login from %s with certificate %s failed: %s",
				session.ip or "unknown address", cert and cert.fingerprint:sub(1, 16) or "(none)", reason);
			return "failure", condition;
		end
		self.username = username;
		return "success";
	end

	wrapped.clean_clone = function ()
		return add_external(session, handler:clean_clone());
	end

	return wrapped;
end

-- Returns whether a session may be offered EXTERNAL: it presented a
-- certificate that is registered on this host and valid now.
local function may_offer_external(session)
	local cert = peer_certificate(session);
	if not cert then return false; end
	local log = session.log or module._log;

	local ok, _, message = check_peer_policy(session, cert);
	if not ok then
		log("debug", "Not offering EXTERNAL for certificate %s: %s", cert.fingerprint, message);
		return false;
	end

	local jids = local_jids(cert, log);
	for _, entry in ipairs(jids) do
		local records = load_records(jid.node(entry.bare));
		if records and find_record(records, cert.fingerprint) then
			return true;
		end
	end
	if #jids == 0 and indexed_owner(cert.fingerprint) then
		return true;
	end
	log("debug", "Not offering EXTERNAL: certificate %s is not registered on this host", cert.fingerprint);
	return false;
end

-- Runs after mod_saslauth (priority 0) has created the session's SASL handler
-- and listed its mechanisms, so that EXTERNAL is added to both.
module:hook("stream-features", function (event)
	local session, features = event.origin, event.features;
	if session.type ~= "c2s_unauthed" or not session.secure or not session.sasl_handler then
		return;
	end
	if not may_offer_external(session) then
		return;
	end

	local mechanisms = features:get_child("mechanisms", xmlns_sasl);
	if not mechanisms then
		return;
	end
	session.sasl_handler = add_external(session, session.sasl_handler);
	mechanisms:text_tag("mechanism", "EXTERNAL");
	(session.log or module._log)("debug", "Offering SASL EXTERNAL");
end, -1);

-- Runs before mod_saslauth's <auth/> handler (priority 0). That handler
-- starts over with a handler from the auth provider, without EXTERNAL, when
-- the previous attempt selected a mechanism or ended in a base64 error, so
-- this one puts a fresh handler with EXTERNAL in place first.
module:hook("stanza/" .. xmlns_sasl .. ":auth", function (event)
	local session = event.origin;
	if session.type ~= "c2s_unauthed" or not session.secure or event.stanza.attr.mechanism ~= "EXTERNAL" then
		return;
	end
	local handler = session.sasl_handler;
	if handler and not handler.selected and handler.mechs and handler.mechs["EXTERNAL"] then
		return;
	end
	if may_offer_external(session) then
		session.sasl_handler = add_external(session, usermanager.get_sasl_handler(host, session));
	end
end, 1);

module:hook("authentication-success", function (event)
	local session = event.session;
	local pending = session.client_certs_pending;
	session.client_certs_pending = nil;
	if not pending or pending.username ~= session.username then
		return;
	end
	session.client_certs_fingerprint = pending.fingerprint;
	session.client_certs_name = pending.name;
	session.client_certs_no_management = pending.no_cert_management;
	session.client_certs_resource = pending.resource;
	index_call("record_login", host, pending.fingerprint, now());
	(session.log or module._log)("info", "%s@%s logged in from %s with certificate %q (SHA-256 %s)",
		session.username, host, session.ip or "unknown address", pending.name, pending.fingerprint);
end);

module:hook("authentication-failure", function (event)
	event.session.client_certs_pending = nil;
end);

module:hook("user-deleted", function (event)
	if event.host == nil or event.host == host then
		index_call("remove_user", host, event.username);
	end
end);

-- Expiry

-- Deletes certificates whose notAfter is more than remove_expired_after
-- seconds in the past, from storage and index.
-- returns seconds until the next run
local function remove_expired()
	local cutoff = now() - remove_expired_after;
	local rows = index_call("expired", host, cutoff, 1000) or {};
	for _, row in ipairs(rows) do
		local records = load_records(row.username);
		local record = records and find_record(records, row.fingerprint);
		local cert = record and parse_record(record);
		if cert and cert.not_after < cutoff then
			remove_certificate(row.username, record.name, false);
			module:log("info", "Deleted certificate %q of %s@%s: notAfter %s is older than %d seconds",
				record.name, row.username, host, os.date("!%Y-%m-%dT%H:%M:%SZ", cert.not_after), remove_expired_after);
		else
			index_call("remove", host, row.fingerprint);
		end
	end
	-- A full batch may mean more are waiting.
	return #rows >= 1000 and 1 or 3600;
end

-- A certificate whose id-on-xmppAddr is a full JID may only bind that
-- resource (XEP-0257 section 3).
module:hook("pre-resource-bind", function (event)
	local resource = event.session.client_certs_resource;
	if resource then
		event.resource = resource;
	end
end);

-- Ad-hoc commands (XEP-0050), for clients without XEP-0257 support

local dataforms = require "util.dataforms";
local adhoc_new = module:require("adhoc").new;
local adhoc_simple_form = require "util.adhoc".new_simple_form;

local xmlns_adhoc_node = "urn:xmpp:saslcert:1#";

-- Returns the account and session of an ad-hoc request, or nil and an error
-- when the session may not manage certificates at all (see check_session).
local function adhoc_requester(data)
	local username = jid.split(data.from);
	local session = prosody.full_sessions and prosody.full_sessions[data.from];
	if not session then
		return nil, make_error("forbidden", "certificate management requires a session on this server");
	end
	local ok, err = check_session(session);
	if not ok then
		return nil, err;
	end
	return username, session;
end

-- Turns an util.error object into an ad-hoc error note.
local function adhoc_failure(err)
	return { status = "completed", error = { message = err.text or err.condition } };
end

local add_form = dataforms.new({
	title = "Add a client certificate";
	instructions = "Paste the certificate as PEM or base64 DER. It must name your JID in an id-on-xmppAddr.";
	{ name = "FORM_TYPE", type = "hidden", value = xmlns_adhoc_node .. "add" };
	{ name = "name", type = "text-single", label = "Name", required = true };
	{ name = "cert", type = "text-multi", label = "Certificate", required = true };
	{ name = "manage", type = "boolean", label = "Sessions using it may manage certificates", value = true };
});

local function name_choice_form(action)
	return dataforms.new({
		title = action .. " a client certificate";
		{ name = "FORM_TYPE", type = "hidden", value = xmlns_adhoc_node .. action:lower() };
		{ name = "name", type = "list-single", label = "Certificate", required = true };
	});
end

local list_form = dataforms.new({
	title = "Client certificates";
	{ name = "certificates", type = "text-multi", label = "Name, SHA-256 fingerprint, notAfter, sessions" };
});

local function describe_certificate(item)
	local expires = item.not_after and os.date("!%Y-%m-%d", item.not_after) or "unknown";
	local sessions = #item.resources > 0 and table.concat(item.resources, " ") or "none";
	return ("%s, %s, %s, %s"):format(item.name, item.fingerprint or "unparsable", expires, sessions);
end

local function adhoc_list(_, data)
	local username, requester_err = adhoc_requester(data);
	if not username then return adhoc_failure(requester_err); end
	local list, err = list_certificates(username);
	if not list then return adhoc_failure(err); end
	local lines = {};
	for i, item in ipairs(list) do lines[i] = describe_certificate(item); end
	local values = { certificates = table.concat(lines, "\n") };
	return { status = "completed", result = { layout = list_form, values = values } };
end

local function adhoc_add(fields, form_err, data)
	if form_err then
		return { status = "completed", error = { message = "invalid form: check the name and certificate fields" } };
	end
	local username, session = adhoc_requester(data);
	if not username then return adhoc_failure(session); end
	local ok, err = check_may_manage(session);
	if not ok then return adhoc_failure(err); end
	local record, add_err = add_certificate(username, fields.name, fields.cert, not fields.manage);
	if not record then return adhoc_failure(add_err); end
	return { status = "completed", info = ("Added certificate %q (SHA-256 %s)."):format(record.name, record.fingerprint) };
end

-- Builds the handler of the disable or revoke command: first a list of the
-- account's certificate names, then the removal.
local function adhoc_remover(action, revoke)
	local form = name_choice_form(action);
	return function (_, data, state)
		if data.action == "cancel" then
			return { status = "canceled" };
		end
		local username, session = adhoc_requester(data);
		if not username then return adhoc_failure(session); end
		if not state then
			local list, err = list_certificates(username);
			if not list then return adhoc_failure(err); end
			if #list == 0 then
				return { status = "completed", info = "This account has no client certificates." };
			end
			local options = {};
			for i, item in ipairs(list) do options[i] = { label = item.name, value = item.name }; end
			return { status = "executing", actions = { "complete" }, form = { layout = form, values = { name = options } } },
				"choosing";
		end
		local fields, form_err = form:data(data.form);
		if form_err then
			return { status = "completed", error = { message = "choose a certificate" } };
		end
		local ok, err = check_may_manage(session);
		if not ok then return adhoc_failure(err); end
		local record, remove_err = remove_certificate(username, fields.name, revoke);
		if not record then return adhoc_failure(remove_err); end
		local done = revoke and "Revoked" or "Disabled";
		return { status = "completed", info = ("%s certificate %q."):format(done, fields.name) };
	end;
end

module:depends("adhoc");
module:provides("adhoc", adhoc_new("List client certificates", xmlns_adhoc_node .. "list", adhoc_list, "local_user"));
module:provides("adhoc", adhoc_new("Add a client certificate", xmlns_adhoc_node .. "add",
	adhoc_simple_form(add_form, adhoc_add), "local_user"));
module:provides("adhoc", adhoc_new("Disable a client certificate", xmlns_adhoc_node .. "disable",
	adhoc_remover("Disable", false), "local_user"));
module:provides("adhoc", adhoc_new("Revoke a client certificate", xmlns_adhoc_node .. "revoke",
	adhoc_remover("Revoke", true), "local_user"));

-- Admin shell commands: client_certs:list(jid), :add(jid, name, path),
-- :disable(jid, name), :revoke(jid, name).

-- One implementation per command, called with the account's username.
local shell_actions = {
	list = function (shell, username)
		local list, err = list_certificates(username);
		if not list then return nil, err.text; end
		for _, item in ipairs(list) do
			shell.session.print(describe_certificate(item));
		end
		return true, ("%d certificates"):format(#list);
	end;
	add = function (_, username, name, path)
		local file, open_err = io.open(path or "", "rb");
		if not file then return nil, ("cannot read %s: %s"):format(tostring(path), open_err); end
		local text = file:read("*a");
		file:close();
		local record, err = add_certificate(username, name, text, false);
		if not record then return nil, err.text; end
		return true, ("added %q (SHA-256 %s)"):format(record.name, record.fingerprint);
	end;
	disable = function (_, username, name)
		local record, err = remove_certificate(username, name, false);
		if not record then return nil, err.text; end
		return true, ("disabled %q"):format(name);
	end;
	revoke = function (_, username, name)
		local record, err = remove_certificate(username, name, true);
		if not record then return nil, err.text; end
		return true, ("revoked %q and closed its sessions"):format(name);
	end;
};

local shell_help = {
	list = { "List the client certificates of an account", { "jid" } };
	add = { "Add a PEM or DER certificate file to an account", { "jid", "name", "path" } };
	disable = { "Remove a certificate; sessions using it stay", { "jid", "name" } };
	revoke = { "Remove a certificate and close the sessions using it", { "jid", "name" } };
};

-- Returns the username of a JID argument, or nil and an error for the shell.
local function shell_account(user_jid)
	local username, user_host = jid.split(user_jid);
	if not username or user_host ~= host then
		return nil, ("expected a user JID of %s, got %s"):format(host, tostring(user_jid));
	end
	return username;
end

local function shell_handler(action)
	return function (shell, user_jid, ...)
		local username, err = shell_account(user_jid);
		if not username then return nil, err; end
		return shell_actions[action](shell, username, ...);
	end;
end

local prosody_major = tonumber((prosody.version or ""):match("^(%d+)%.")) or 0;
if prosody_major >= 13 then
	-- Prosody 13 dispatches host commands itself, by the host of the
	-- argument named in host_selector.
	for action, help in pairs(shell_help) do
		local args = {};
		for i, arg_name in ipairs(help[2]) do args[i] = { name = arg_name, type = "string" }; end
		module:add_item("shell-command", {
			section = "client_certs";
			section_desc = "Manage XEP-0257 client certificates";
			name = action;
			desc = help[1];
			args = args;
			host_selector = "jid";
			handler = shell_handler(action);
		});
	end
else
	-- Prosody 0.12 has one shared shell environment for all hosts, so each
	-- host registers its handlers and the shell command picks one by the
	-- JID's host.
	local handlers_by_host = module:shared("/*/client_certs/shell_handlers");
	handlers_by_host[host] = {};
	for action in pairs(shell_help) do
		handlers_by_host[host][action] = shell_handler(action);
	end
	function module.unload()
		handlers_by_host[host] = nil;
	end

	local shell_env = module:shared("/*/admin_shell/env");
	shell_env.client_certs = shell_env.client_certs or {};
	for action in pairs(shell_help) do
		shell_env.client_certs[action] = function (shell, user_jid, ...)
			local handlers = handlers_by_host[jid.host(user_jid or "") or ""];
			if not handlers then
				return nil, ("mod_client_certs is not loaded on the host of %s"):format(tostring(user_jid));
			end
			return handlers[action](shell, user_jid, ...);
		end;
	end
end

-- XEP-0077 from a certificate session

local xmlns_register = "jabber:iq:register";

-- Returns the XEP-0077 password change form that asks for the old
-- password, which a session logged in with a certificate cannot know.
local function password_change_form()
	return st.stanza("x", { xmlns = "jabber:x:data", type = "form" })
		:text_tag("title", "Password Change")
		:text_tag("instructions", "Use this form to change your password.")
		:tag("field", { type = "hidden", var = "FORM_TYPE" })
			:text_tag("value", "jabber:iq:register:changepassword"):up()
		:tag("field", { type = "text-single", var = "username", label = "Username" })
			:tag("required"):up():up()
		:tag("field", { type = "text-private", var = "old_password", label = "Old Password" })
			:tag("required"):up():up()
		:tag("field", { type = "text-private", var = "password", label = "New Password" })
			:tag("required"):up():up();
end

-- XEP-0257 section 4: a session that logged in with a certificate proved
-- possession of a key, not of the password, so it may neither change the
-- password nor remove the account. Prosody fires iq/self/ before
-- iq-set/self/, and mod_register_ibr answers on iq/self/, so this runs on
-- iq/self/ above its default priority of 0.
module:hook("iq/self/" .. xmlns_register .. ":query", function (event)
	local origin, stanza = event.origin, event.stanza;
	if stanza.attr.type ~= "set" or not origin.client_certs_fingerprint then
		return;
	end
	local query = stanza.tags[1];
	local action = query:get_child("remove") and "account removal" or "password change";
	origin.log("info", "Refused %s for %s@%s: session logged in with certificate %q",
		action, origin.username, host, origin.client_certs_name);
	-- XEP-0077 places the form before the <error/> element.
	local reply = st.reply(stanza);
	reply.attr.type = "error";
	reply:tag("query", { xmlns = xmlns_register }):add_child(password_change_form()):up();
	reply:tag("error", { type = "modify" })
		:tag("not-authorized", { xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" }):up()
		:text_tag("text", ("%s needs the password; log in with the password to do this"):format(action),
			{ xmlns = "urn:ietf:params:xml:ns:xmpp-stanzas" });
	origin.send(reply);
	return true;
end, 10);

open_index();
if remove_expired_after then
	module:add_timer(1, remove_expired);
end
