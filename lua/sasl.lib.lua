-- SASL EXTERNAL for mod_client_certs: offers EXTERNAL to clients that
-- presented a registered certificate and decides their login attempts.
--
-- mod_saslauth runs the exchange; this file only gives the session a SASL
-- handler that supports EXTERNAL, and records which certificate a session used.

local jid = require "util.jid";
local usermanager = require "core.usermanager";

local xmlns_sasl = "urn:ietf:params:xml:ns:xmpp-sasl";

-- Sets up the hooks. core contains the shared functions and settings of
-- mod_client_certs.lua.
return function (core)
	local native, host, now = core.native, core.host, core.now;
	local max_size, require_xmpp_addr = core.max_size, core.require_xmpp_addr;
	local check_policy, local_jids = core.check_policy, core.local_jids;
	local load_records, find_record = core.load_records, core.find_record;
	local index_call, indexed_owner = core.index_call, core.indexed_owner;

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

		-- Also applies to certificates registered while the option was off.
		if require_xmpp_addr and #candidates == 0 then
			return nil, "not-authorized", "certificate names no account of this host in an id-on-xmppAddr";
		end

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
			-- Without xmppAddr values (allowed by the option), the stored
			-- registration alone ties the certificate to the account.
			local named = #candidates == 0;
			for _, entry in ipairs(candidates) do
				if entry.bare == node .. "@" .. host then
					named, resource = true, entry.resource;
					break;
				end
			end
			if not named then
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

		local wrapped = setmetatable({ client_certs_external = true }, { __index = handler });
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
		if #jids == 0 and not require_xmpp_addr and indexed_owner(cert.fingerprint) then
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
		-- An auth provider with its own EXTERNAL has listed it already.
		for _, offered in ipairs(mechanisms.tags) do
			if offered.name == "mechanism" and offered:get_text() == "EXTERNAL" then
				return;
			end
		end
		mechanisms:text_tag("mechanism", "EXTERNAL");
		(session.log or module._log)("debug", "Offering SASL EXTERNAL");
	end, -1);

	-- Runs before mod_saslauth's <auth/> handler (priority 0), which would
	-- reply invalid-mechanism to an EXTERNAL attempt that was not offered
	-- (no certificate, or an expired, untrusted or unregistered one) or
	-- start over with a handler without EXTERNAL. A handler with EXTERNAL
	-- puts the attempt through decide_external instead, so the client gets
	-- the condition that fits (credentials-expired for an expired
	-- certificate) and authentication-failure reaches rate limiters.
	module:hook("stanza/" .. xmlns_sasl .. ":auth", function (event)
		local session = event.origin;
		if session.type ~= "c2s_unauthed" or not session.secure or event.stanza.attr.mechanism ~= "EXTERNAL" then
			return;
		end
		local handler = session.sasl_handler;
		if handler and not handler.selected and handler.client_certs_external then
			return;
		end
		-- Keep an unused handler, which carries the channel binding set up
		-- with the stream features; a used one is replaced, as
		-- mod_saslauth would do.
		if not handler or handler.selected then
			handler = usermanager.get_sasl_handler(host, session);
		end
		session.sasl_handler = add_external(session, handler);
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

	-- A certificate whose id-on-xmppAddr is a full JID may only bind that
	-- resource (XEP-0257 section 3).
	module:hook("pre-resource-bind", function (event)
		local resource = event.session.client_certs_resource;
		if resource then
			event.resource = resource;
		end
	end);
end
