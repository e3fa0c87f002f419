-- mod_client_certs: XEP-0257 client certificate management and SASL
-- EXTERNAL login with those certificates (RFC 6120 section 6, XEP-0178).
--
-- Every fact about a certificate comes from the native library
-- client_certs.so; this file connects it to Prosody's events, sessions,
-- storage and logging.

local st = require "util.stanza";
local jid = require "util.jid";
local errors = require "util.error";
local utf8_valid = require "util.encodings".utf8.valid;
local time_now = require "util.time".now;

-- prosodyctl mod_client_certs loads the module for the global host only to
-- run its command, which loads the module again for the JID's host.
if module.host == "*" then
	module:require("prosodyctl")(module:shared("/*/client_certs/actions"));
	return;
end

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

-- An unusable value stops the module from loading: running with a guess
-- would enforce a policy the administrator did not choose.
if max_per_user < 1 or max_per_user % 1 ~= 0 then
	error(("client_certs_max_per_user must be a positive whole number, got %s"):format(max_per_user), 0);
end
if max_size < 512 or max_size % 1 ~= 0 then
	error(("client_certs_max_size must be a whole number of bytes, at least 512, got %s"):format(max_size), 0);
end
if remove_expired_after ~= nil and (remove_expired_after < 0 or remove_expired_after % 1 ~= 0) then
	error(("client_certs_remove_expired_after must be a whole number of seconds (0 or more), got %s")
		:format(remove_expired_after), 0);
end

local trust_anchors;
if trusted_cas_path then
	local file, open_err = io.open(trusted_cas_path, "rb");
	if not file then
		-- io.open's message already starts with the path.
		error(("client_certs_trusted_cas: cannot read the CA bundle: %s"):format(open_err), 0);
	end
	local bundle = file:read("*a");
	file:close();
	local anchors, _, message = native.load_trust_anchors(bundle, trusted_cas_path);
	if not anchors then
		error("client_certs_trusted_cas: " .. message, 0);
	end
	trust_anchors = anchors;
	module:log("info", "Client certificates must be issued by one of %d CAs from %s", anchors.count, trusted_cas_path);
end

local prosody_major = tonumber((prosody.version or ""):match("^(%d+)%.")) or 0;

-- Returns whether an ssl option table sets flag in field, which may be a
-- string or an array of strings.
local function has_tls_flag(ssl_config, field, flag)
	local value = type(ssl_config) == "table" and ssl_config[field] or nil;
	if type(value) == "table" then
		for _, item in ipairs(value) do
			if item == flag then return true; end
		end
		return false;
	end
	return value == flag;
end

-- Checks that a TLS option lets clients present certificates, and logs a
-- warning naming what is missing. Without verify "peer", OpenSSL never requests
-- a client certificate. Prosody 13 also needs verifyext lsec_continue,
-- or the handshake of a self-signed certificate fails before this module
-- receives it (Prosody 0.12 has these verifyext values by default).
local function check_tls_option(option)
	local ssl_config = module:get_option(option);
	if not has_tls_flag(ssl_config, "verify", "peer") then
		module:log("warn", "%s has no verify = { \"peer\", \"client_once\" }: clients cannot present"
			.. " certificates, so SASL EXTERNAL is never offered", option);
	end
	if prosody_major >= 13 and not has_tls_flag(ssl_config, "verifyext", "lsec_continue") then
		module:log("warn", "%s has no verifyext = { \"lsec_continue\", \"lsec_ignore_purpose\" }:"
			.. " TLS handshakes with self-signed client certificates will fail", option);
	end
end

check_tls_option("c2s_ssl");
local direct_tls_ports = module:get_option_array("c2s_direct_tls_ports", {});
if #direct_tls_ports > 0 then
	check_tls_option("c2s_direct_tls_ssl");
end

-- Maximum length of a certificate name, in characters.
local max_name_length = 1023;

local xmlns_saslcert = "urn:xmpp:saslcert:1";

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

-- COMPAT: adds this module's fields to a record written by the community
-- module. Its name, x509cert, pem, digest and no_cert_management stay as
-- they are, so that the community module can still read the record.
local function upgrade_record(record)
	if type(record.fingerprint) == "string" then
		return;
	end
	local cert = parse_record(record);
	if not cert then
		return;
	end
	record.fingerprint = cert.fingerprint;
	record.not_before = cert.not_before;
	record.not_after = cert.not_after;
end

local function save_records(username, records)
	if next(records) == nil then
		records = nil;
	else
		for _, record in pairs(records) do
			upgrade_record(record);
		end
	end
	local ok, err = store:set(username, records);
	if not ok then
		module:log("error", "Failed to save client certificates of %s@%s: %s", username, host, err);
		return nil, make_error("storage-failed", "could not save certificates, try again later");
	end
	return true;
end

-- Finds the record of an account that contains the certificate with this
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

-- Returns the index row of a record, for put() and rebuild(). Records
-- written by this module carry fingerprint and notAfter; older ones are
-- parsed.
-- returns row, or nil when the record's certificate does not parse
local function index_row(username, record)
	local fingerprint, not_after = record.fingerprint, record.not_after;
	if type(fingerprint) ~= "string" or type(not_after) ~= "number" then
		local cert = parse_record(record);
		if not cert then return nil; end
		fingerprint, not_after = cert.fingerprint, cert.not_after;
	end
	return { username = username; name = record.name; fingerprint = fingerprint; not_after = not_after };
end

-- Calls visit(username, records) for every account with certificates.
-- returns true, or nil and a message when storage cannot list the accounts
-- or load one of them (visit may then have seen only some accounts)
local function each_account(visit)
	if not store.users then
		return nil, "this storage backend cannot list accounts";
	end
	for username in store:users() do
		local records, err = store:get(username);
		if records == nil and err then
			return nil, ("loading the certificates of %s failed: %s"):format(username, err);
		end
		if records then
			visit(username, records);
		end
	end
	return true;
end

-- Rows sent to the index at once during a rebuild. Small batches keep the
-- Lua heap small, which matters because the garbage collector's work grows
-- with it: holding all rows made a rebuild of 100,000 certificates about
-- twice as slow.
local rebuild_batch_size = 1000;

-- Refills this host's rows from storage, in one index transaction.
-- returns number of rows, or nil
local function rebuild_index()
	local started = time_now();
	if not index_call("begin_rebuild", host) then
		return nil;
	end

	local batch, count, failed = {}, 0, false;
	local function flush()
		if #batch > 0 and not failed then
			failed = not index_call("add_rows", host, batch);
			count = count + #batch;
		end
		batch = {};
	end
	-- pcall: a storage backend may raise instead of returning an error.
	local ran, listed, list_err = pcall(each_account, function (username, records)
		for _, record in pairs(records) do
			batch[#batch + 1] = index_row(username, record);
			if #batch >= rebuild_batch_size then flush(); end
		end
	end);
	flush();

	if not ran or not listed then
		index:abort_rebuild();
		module:log("error", "Rebuilding the fingerprint index of %s failed while reading storage: %s; it will be"
			.. " retried when the module loads again", host, ran and list_err or listed);
		return nil;
	end
	if failed or not index_call("finish_rebuild", host, now()) then
		index:abort_rebuild();
		return nil;
	end
	module:log("info", "Rebuilt the fingerprint index of %s from storage: %d certificates in %.2f s",
		host, count, time_now() - started);
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

-- Returns the account that the index lists for a certificate, after
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

-- Returns another account of this host that has registered a certificate. Without
-- an index, every account in storage is searched, which is slow but keeps
-- a certificate on one account.
-- returns username, or nil
local function certificate_owner(fingerprint, except_username)
	if index then
		return (indexed_owner(fingerprint));
	end
	local owner;
	local listed, err = each_account(function (username, records)
		if not owner and username ~= except_username and find_record(records, fingerprint) then
			owner = username;
		end
	end);
	if not listed then
		module:log("error", "Cannot check other accounts of %s for certificate %s: %s", host, fingerprint, err);
		return nil, make_error("storage-failed", "could not check other accounts, try again later");
	end
	return owner;
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
	local owner, owner_err = certificate_owner(cert.fingerprint, username);
	if owner_err then
		return nil, owner_err;
	end
	if owner and owner ~= username then
		return nil, make_error("conflict", "this certificate is already registered on another account");
	end
	local count = 0;
	for _ in pairs(records) do count = count + 1; end
	if count >= max_per_user then
		return nil, make_error("too-many",
			("this account holds %d certificates and the maximum is %d; disable or revoke one first")
				:format(count, max_per_user));
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

	index_call("put", host, index_row(username, record));
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
-- returns record, nil, number of sessions closed; or nil, error
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
	local closed = 0;
	if revoke then
		closed = fingerprint and close_sessions_using(username, fingerprint) or 0;
		module:log("info", "Certificate %q (SHA-256 %s) revoked on %s@%s, %d sessions closed",
			name, fingerprint or "unknown", username, host, closed);
	else
		module:log("info", "Certificate %q (SHA-256 %s) disabled on %s@%s", name, fingerprint or "unknown", username, host);
	end
	return record, nil, closed;
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
	local rows;
	if index then
		rows = index_call("expired", host, cutoff, 1000) or {};
	else
		-- Without an index, search storage; this is slower but runs hourly.
		rows = {};
		local listed, err = each_account(function (username, records)
			for _, record in pairs(records) do
				local row = index_row(username, record);
				if row and row.not_after < cutoff and #rows < 1000 then
					rows[#rows + 1] = row;
				end
			end
		end);
		if not listed then
			module:log("error", "Cannot look for expired certificates of %s: %s", host, err);
		end
	end
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

-- XEP-0077 from a certificate session

local xmlns_register = "jabber:iq:register";

-- Returns the XEP-0077 password change form that requests the old
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
-- iq-set/self/, and mod_register_ibr replies on iq/self/, so this runs on
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

-- The SASL EXTERNAL hooks and the ad-hoc and shell commands live in their
-- own files, loaded from this module's folder.
local core = {
	native = native;
	host = host;
	prosody_major = prosody_major;
	now = now;
	max_size = max_size;
	require_xmpp_addr = require_xmpp_addr;
	make_error = make_error;
	check_policy = check_policy;
	local_jids = local_jids;
	load_records = load_records;
	find_record = find_record;
	index_call = index_call;
	indexed_owner = indexed_owner;
	check_session = check_session;
	check_may_manage = check_may_manage;
	add_certificate = add_certificate;
	list_certificates = list_certificates;
	remove_certificate = remove_certificate;
};
module:require("sasl")(core);
module:require("commands")(core);

open_index();
if remove_expired_after then
	module:add_timer(1, remove_expired);
end
