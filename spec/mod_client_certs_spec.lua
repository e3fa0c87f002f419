-- Specs for lua/mod_client_certs.lua, loaded into a stubbed Prosody module
-- environment and driven through the handlers it hooks.
--
-- Stanzas, JIDs, errors and SASL handlers come from the installed Prosody
-- 0.12 in /usr/lib/prosody. The module API, storage, sessions and
-- core.usermanager are tables built here. The native library is loaded from
-- build/mod_client_certs/, so run `make build` first and run busted from the
-- repository root.
--
-- Certificates are made fresh on each run with the openssl CLI in a
-- temporary folder. OpenSSL 3.0's `req -x509` cannot set notBefore, so the
-- expired and not-yet-valid certificates are issued by `openssl ca -selfsign`
-- with fixed -startdate and -enddate values.

-- luacheck: ignore 212/self

package.path = "/usr/lib/prosody/?.lua;" .. package.path;
package.cpath = "/usr/lib/prosody/?.so;" .. package.cpath;

local st = require "util.stanza";
local sasl = require "util.sasl";
local format = require "util.format".format;

local MODULE_FILE = "lua/mod_client_certs.lua";
local LIB_DIR = "build/mod_client_certs";
local PROSODY_MODULES = "/usr/lib/prosody/modules";
local HOST = "example.test";
local XMLNS_SASLCERT = "urn:xmpp:saslcert:1";
local XMLNS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
local XMLNS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
local XMLNS_REGISTER = "jabber:iq:register";
local XMPP_ADDR = "otherName:1.3.6.1.5.5.7.8.5;UTF8:";

-- Certificates

-- Folder holding this run's certificates and index files.
local tmp_dir;

-- Certificates by name: { pem, base64, fingerprint }.
local certs = {};

local function read_file(path)
	local file = assert(io.open(path, "rb"));
	local content = file:read("a");
	file:close();
	return content;
end

-- Runs a shell command in tmp_dir, appending its stderr to openssl.log.
local function run(command)
	local ok = os.execute("cd " .. tmp_dir .. " && " .. command .. " 2>>openssl.log");
	if not ok then
		error(("command failed: %s\n%s"):format(command, read_file(tmp_dir .. "/openssl.log")));
	end
end

local function run_output(command)
	local pipe = assert(io.popen("cd " .. tmp_dir .. " && " .. command .. " 2>>openssl.log"));
	local output = pipe:read("a");
	pipe:close();
	return output;
end

-- Reads name.pem into certs[name], with its base64 DER and SHA-256
-- fingerprint as openssl computes them.
local function register_cert(name)
	run(("openssl x509 -in %s.pem -outform DER -out %s.der"):format(name, name));
	local fingerprint = run_output(("openssl x509 -in %s.pem -noout -fingerprint -sha256"):format(name));
	certs[name] = {
		pem = read_file(tmp_dir .. "/" .. name .. ".pem");
		base64 = run_output(("openssl base64 -A -in %s.der"):format(name));
		fingerprint = fingerprint:match("=([%x:]+)"):gsub(":", ""):lower();
	};
end

local function addext_arguments(extensions)
	local arguments = {};
	for i, extension in ipairs(extensions) do
		arguments[i] = ("-addext '%s'"):format(extension);
	end
	return table.concat(arguments, " ");
end

-- Makes a self-signed certificate valid from now for 30 days. The key
-- argument is an openssl -newkey value and defaults to P-256.
local function self_signed(name, extensions, key)
	key = key or "ec -pkeyopt ec_paramgen_curve:P-256";
	run(("openssl req -x509 -newkey %s -nodes -keyout %s.key -out %s.pem -days 30 -subj '/CN=%s' %s")
		:format(key, name, name, name, addext_arguments(extensions)));
	register_cert(name);
end

-- Makes a self-signed certificate with a fixed validity window, through a
-- throwaway `openssl ca` database.
local function self_signed_between(name, extensions, start_date, end_date)
	run(("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.csr"
		.. " -subj '/CN=%s' %s"):format(name, name, name, addext_arguments(extensions)));
	run(("mkdir -p %s.ca && : > %s.ca/index.txt && echo 01 > %s.ca/serial"):format(name, name, name));
	local config = io.open(("%s/%s.cnf"):format(tmp_dir, name), "w");
	config:write(([[
[ca]
default_ca = fixed_dates
[fixed_dates]
database = %s.ca/index.txt
new_certs_dir = %s.ca
serial = %s.ca/serial
default_md = sha256
policy = any_name
copy_extensions = copy
unique_subject = no
[any_name]
commonName = supplied
]]):format(name, name, name));
	config:close();
	run(("openssl ca -batch -notext -config %s.cnf -selfsign -keyfile %s.key -in %s.csr"
		.. " -startdate %s -enddate %s -out %s.pem"):format(name, name, name, start_date, end_date, name));
	register_cert(name);
end

-- Makes a certificate for a fresh P-256 key, signed by the CA ca_name.
local function signed_by(ca_name, name, extensions)
	run(("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key -out %s.csr"
		.. " -subj '/CN=%s' %s"):format(name, name, name, addext_arguments(extensions)));
	run(("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -days 30 -copy_extensions copy -out %s.pem")
		:format(name, ca_name, ca_name, name));
	register_cert(name);
end

local function make_certificates()
	local alice_addr = "subjectAltName=" .. XMPP_ADDR .. "alice@example.test";
	self_signed("alice", { alice_addr });
	self_signed("alice_phone", { alice_addr });
	-- An RSA 2048 certificate is about 800 bytes of DER, over the smallest
	-- client_certs_max_size the module accepts (512).
	self_signed("alice_rsa", { alice_addr }, "rsa:2048");
	self_signed("alice_phone_resource", { "subjectAltName=" .. XMPP_ADDR .. "alice@example.test/phone" });
	self_signed("bob", { "subjectAltName=" .. XMPP_ADDR .. "bob@example.test" });
	self_signed("alice_and_bob", {
		"subjectAltName=" .. XMPP_ADDR .. "alice@example.test," .. XMPP_ADDR .. "bob@example.test",
	});
	self_signed("no_addr", { "subjectAltName=DNS:client.example.test" });
	self_signed("server_only", { alice_addr, "extendedKeyUsage=serverAuth" });
	self_signed_between("expired", { alice_addr }, "20200101000000Z", "20200131000000Z");
	self_signed_between("not_yet_valid", { alice_addr }, "20990101000000Z", "20990131000000Z");
	self_signed("ca", { "basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign" });
	signed_by("ca", "alice_by_ca", { alice_addr, "extendedKeyUsage=clientAuth" });
end

-- Module environment

local index_count = 0;

-- Returns a deep copy of a value.
local function copy(value)
	if type(value) ~= "table" then return value; end
	local result = {};
	for key, item in pairs(value) do
		result[key] = copy(item);
	end
	return result;
end

-- Loads the module into a fresh environment.
--
-- options: module options, added to a temporary client_certs_index_path and
-- a c2s_ssl that requests client certificates.
-- seed: username -> records, the storage contents before the module loads.
-- store_failures: storage method name -> error message, from the start.
-- prosody_version: prosody.version, "0.12.3" unless given.
-- Returns a table with the recorded hooks, logs, storage and helpers.
local function load_module(options, seed, prosody_version, store_failures)
	index_count = index_count + 1;
	local loaded = {
		options = {
			client_certs_index_path = ("%s/index-%d.sqlite"):format(tmp_dir, index_count);
			c2s_ssl = { verify = { "peer", "client_once" } };
		};
		hooks = {};
		features = {};
		dependencies = {};
		timers = {};
		items = {};
		shared = {};
		logs = {};
		data = copy(seed or {});
		-- Storage method name -> error message that the method returns.
		store_failures = store_failures or {};
		store_names = {};
		accounts = { alice = true; bob = true };
		passwords = { alice = "alice-password" };
		-- Seconds since the epoch that os.time() returns, or nil for the clock.
		clock = nil;
	};
	for name, value in pairs(options or {}) do
		loaded.options[name] = value;
	end

	local function capture(level, message, ...)
		loaded.logs[#loaded.logs + 1] = { level = level, text = format(message, ...) };
	end

	-- The store copies records in get() and set(), as a real storage backend
	-- serialises them, so a failed set() leaves the stored data as it was.
	local store = {};
	function store:get(username)
		if loaded.store_failures.get then return nil, loaded.store_failures.get; end
		return copy(loaded.data[username]);
	end
	function store:set(username, records)
		if loaded.store_failures.set then return nil, loaded.store_failures.set; end
		loaded.data[username] = copy(records);
		return true;
	end
	function store:users()
		local usernames = {};
		for username in pairs(loaded.data) do usernames[#usernames + 1] = username; end
		local i = 0;
		return function ()
			i = i + 1;
			return usernames[i];
		end;
	end

	local host_sessions = {};
	local full_sessions = {};
	local fake_prosody = {
		version = prosody_version or "0.12.3";
		hosts = { [HOST] = { sessions = host_sessions } };
		full_sessions = full_sessions;
		paths = { data = tmp_dir .. "/data"; config = tmp_dir };
	};

	local module = { host = HOST; name = "client_certs"; _log = capture };
	function module:log(level, message, ...) capture(level, message, ...); end
	function module:get_option(name, default)
		local value = loaded.options[name];
		if value == nil then return default; end
		return value;
	end
	function module:get_option_number(name, default)
		return tonumber(self:get_option(name, default));
	end
	function module:get_option_boolean(name, default)
		return self:get_option(name, default);
	end
	function module:get_option_array(name, default)
		return self:get_option(name, default);
	end
	-- Resolves a relative path against prosody.paths[parent], as Prosody does.
	function module:get_option_path(name, default, parent)
		local value = self:get_option(name, default);
		if value == nil or value:sub(1, 1) == "/" then return value; end
		return fake_prosody.paths[parent] .. "/" .. value;
	end
	function module:get_directory() return LIB_DIR; end
	function module:open_store(name)
		loaded.store_names[#loaded.store_names + 1] = name;
		return store;
	end
	function module:hook(event_name, handler, priority)
		local handlers = loaded.hooks[event_name] or {};
		handlers[#handlers + 1] = { handler = handler; priority = priority or 0 };
		loaded.hooks[event_name] = handlers;
	end
	function module:add_feature(feature) loaded.features[#loaded.features + 1] = feature; end
	function module:depends(name) loaded.dependencies[#loaded.dependencies + 1] = name; end
	function module:add_timer(delay, callback)
		loaded.timers[#loaded.timers + 1] = { delay = delay; callback = callback };
	end
	function module:add_item(name, item)
		local items = loaded.items[name] or {};
		items[#items + 1] = item;
		loaded.items[name] = items;
	end
	function module:provides(name, item)
		self:add_item(name .. "-provider", item);
	end
	function module:shared(path)
		loaded.shared[path] = loaded.shared[path] or {};
		return loaded.shared[path];
	end
	-- Loads a library into the module's environment, as moduleapi's
	-- require() does: first from this module's own folder (sasl.lib.lua),
	-- then from Prosody's modules (adhoc/adhoc.lib.lua).
	function module:require(lib)
		local path = ("lua/%s.lib.lua"):format(lib);
		if not io.open(path) then
			path = ("%s/%s/%s.lib.lua"):format(PROSODY_MODULES, lib, lib);
		end
		return assert(load(read_file(path), "@" .. path, "t", loaded.env))();
	end

	package.loaded["core.usermanager"] = {
		user_exists = function (username, host)
			return host == HOST and loaded.accounts[username] == true;
		end;
		get_sasl_handler = function (host)
			return sasl.new(host, {
				plain_test = function (_, username, password)
					return loaded.passwords[username] ~= nil and loaded.passwords[username] == password, true;
				end;
			});
		end;
	};

	local fake_os = setmetatable({
		time = function (date)
			if date == nil and loaded.clock then return loaded.clock; end
			return os.time(date);
		end;
	}, { __index = os });

	local env = setmetatable({ module = module; prosody = fake_prosody; os = fake_os }, { __index = _G });
	loaded.env = env;
	local chunk = assert(load(read_file(MODULE_FILE), "@" .. MODULE_FILE, "t", env));
	chunk();

	-- Fires an event the way util.events does: handlers by descending
	-- priority until one returns a value.
	function loaded.fire(event_name, event)
		local handlers = {};
		for i, entry in ipairs(loaded.hooks[event_name] or {}) do handlers[i] = entry; end
		assert(#handlers > 0, "no handler for " .. event_name);
		table.sort(handlers, function (a, b) return a.priority > b.priority; end);
		for _, entry in ipairs(handlers) do
			local result = entry.handler(event);
			if result ~= nil then return result; end
		end
	end

	function loaded.priority(event_name)
		local handlers = loaded.hooks[event_name];
		assert(handlers and #handlers == 1, "expected one handler for " .. event_name);
		return handlers[1].priority;
	end

	-- Returns the log lines of one level.
	function loaded.logs_at(level)
		local lines = {};
		for _, line in ipairs(loaded.logs) do
			if line.level == level then lines[#lines + 1] = line.text; end
		end
		return lines;
	end

	-- Makes an authenticated c2s session and lists it in prosody.hosts.
	function loaded.session(fields)
		local session = {
			type = "c2s";
			host = HOST;
			username = "alice";
			resource = "laptop";
			secure = true;
			sent = {};
			close_calls = {};
			log_lines = {};
		};
		for name, value in pairs(fields or {}) do session[name] = value; end
		session.send = function (stanza)
			session.sent[#session.sent + 1] = stanza;
			return true;
		end;
		session.log = function (level, message, ...)
			session.log_lines[#session.log_lines + 1] = { level = level; text = format(message, ...) };
		end;
		function session:close(reason)
			self.close_calls[#self.close_calls + 1] = reason;
		end
		if session.type == "c2s" then
			local user = host_sessions[session.username] or { sessions = {} };
			user.sessions[session.resource] = session;
			host_sessions[session.username] = user;
			session.full_jid = ("%s@%s/%s"):format(session.username, HOST, session.resource);
			full_sessions[session.full_jid] = session;
		end
		return session;
	end

	return loaded;
end

-- Stanzas

local function saslcert_iq(iq_type, action, children)
	local iq = st.iq({ type = iq_type; id = "saslcert-1"; from = "alice@example.test/laptop" })
		:tag(action, { xmlns = XMLNS_SASLCERT });
	for _, child in ipairs(children or {}) do
		if child.text then
			iq:text_tag(child.name, child.text);
		else
			iq:tag(child.name):up();
		end
	end
	return iq:up();
end

local function append_iq(name, x509cert, no_cert_management)
	local children = {};
	if name then children[#children + 1] = { name = "name"; text = name }; end
	if x509cert then children[#children + 1] = { name = "x509cert"; text = x509cert }; end
	if no_cert_management then children[#children + 1] = { name = "no-cert-management" }; end
	return saslcert_iq("set", "append", children);
end

-- Sends an XEP-0257 request from a session to the module's handler.
-- returns the handler's result and the stanza the session was sent
local function request(loaded, session, iq)
	local action = iq.tags[1];
	local event_name = ("iq-%s/self/%s:%s"):format(iq.attr.type, action.attr.xmlns, action.name);
	local sent_before = #session.sent;
	local result = loaded.fire(event_name, { origin = session; stanza = iq });
	assert.equal(sent_before + 1, #session.sent, "expected exactly one reply to " .. event_name);
	return result, session.sent[#session.sent];
end

-- Appends a certificate and asserts success.
local function append(loaded, session, name, cert_name, no_cert_management)
	local _, reply = request(loaded, session, append_iq(name, certs[cert_name].base64, no_cert_management));
	assert.equal("result", reply.attr.type, tostring(reply));
end

-- Returns the error type, condition and text of an error reply.
local function error_of(reply)
	assert.equal("error", reply.attr.type, tostring(reply));
	local err = assert(reply:get_child("error"), "reply has no <error/>");
	local condition;
	for child in err:childtags(nil, XMLNS_STANZAS) do
		if child.name ~= "text" then condition = child.name; end
	end
	return err.attr.type, condition, err:get_child_text("text", XMLNS_STANZAS);
end

-- Returns the <item/> elements of an items reply as { name, x509cert, resources }.
local function items_of(reply)
	assert.equal("result", reply.attr.type, tostring(reply));
	local items = {};
	for item in reply:get_child("items", XMLNS_SASLCERT):childtags("item") do
		local resources;
		local users = item:get_child("users");
		if users then
			resources = {};
			for resource in users:childtags("resource") do
				resources[#resources + 1] = resource:get_text();
			end
		end
		items[#items + 1] = {
			name = item:get_child_text("name");
			x509cert = item:get_child_text("x509cert");
			resources = resources;
		};
	end
	return items;
end

-- SASL sessions

-- Makes an unauthenticated c2s session whose TLS socket returns the given
-- certificate, or none when cert_name is nil, with a fresh PLAIN handler.
local function unauthed_session(loaded, cert_name)
	local peer = cert_name and {
		pem = function () return certs[cert_name].pem; end;
	};
	local socket = {
		getpeercertificate = function () return peer; end;
	};
	local session = loaded.session({
		type = "c2s_unauthed";
		ip = "192.0.2.1";
		conn = { socket = function () return socket; end };
		sasl_handler = package.loaded["core.usermanager"].get_sasl_handler(HOST);
	});
	session.username, session.resource = nil, nil;
	return session;
end

local function stream_features()
	return st.stanza("stream:features")
		:tag("mechanisms", { xmlns = XMLNS_SASL })
			:text_tag("mechanism", "PLAIN")
		:up();
end

-- Returns the mechanism names of a <stream:features/>, in order.
local function offered_mechanisms(features)
	local names = {};
	for mechanism in features:get_child("mechanisms", XMLNS_SASL):childtags("mechanism") do
		names[#names + 1] = mechanism:get_text();
	end
	return names;
end

-- Fires stream-features for a session and returns the features sent.
local function offer(loaded, session)
	local features = stream_features();
	loaded.fire("stream-features", { origin = session; features = features });
	return features;
end

local function contains(list, value)
	for _, item in ipairs(list) do
		if item == value then return true; end
	end
	return false;
end

local function count_keys(map)
	local count = 0;
	for _ in pairs(map) do count = count + 1; end
	return count;
end

describe("mod_client_certs", function ()
	setup(function ()
		local pipe = assert(io.popen("mktemp -d"));
		tmp_dir = pipe:read("l");
		pipe:close();
		-- The path is pasted into shell commands, so allow only plain characters.
		assert(tmp_dir and tmp_dir:match("^/[%w/._-]+$"), "mktemp -d returned an unusable path");
		make_certificates();
	end);

	teardown(function ()
		if tmp_dir then
			os.execute("rm -rf '" .. tmp_dir .. "'");
		end
	end);

	describe("loading", function ()
		it("adds the disco feature urn:xmpp:saslcert:1", function ()
			local loaded = load_module();
			assert.same({ XMLNS_SASLCERT }, loaded.features);
			assert.is_true(contains(loaded.dependencies, "disco"));
		end);

		it("opens the client_certs store", function ()
			assert.same({ "client_certs" }, load_module().store_names);
		end);

		it("warns when c2s_ssl does not ask for client certificates", function ()
			local loaded = load_module({ c2s_ssl = { protocol = "tlsv1_2+" } });
			local warnings = loaded.logs_at("warn");
			assert.equal(1, #warnings);
			assert.matches("c2s_ssl has no verify", warnings[1], 1, true);
		end);

		it("logs no warning when c2s_ssl verifies the peer", function ()
			assert.same({}, load_module().logs_at("warn"));
		end);

		it("warns on Prosody 13 without lsec_continue", function ()
			local loaded = load_module(nil, nil, "13.0.2");
			local warnings = loaded.logs_at("warn");
			assert.equal(1, #warnings);
			assert.matches("c2s_ssl has no verifyext", warnings[1], 1, true);
		end);

		it("accepts complete Prosody 13 TLS options", function ()
			local c2s_ssl = { verify = { "peer", "client_once" }; verifyext = { "lsec_continue", "lsec_ignore_purpose" } };
			assert.same({}, load_module({ c2s_ssl = c2s_ssl }, nil, "13.0.2").logs_at("warn"));
		end);

		it("stops loading for client_certs_max_per_user 0", function ()
			local loaded, err = pcall(load_module, { client_certs_max_per_user = 0 });
			assert.is_false(loaded);
			assert.matches("client_certs_max_per_user must be a positive whole number, got 0", err, 1, true);
		end);

		it("stops loading for client_certs_max_size below 512", function ()
			local loaded, err = pcall(load_module, { client_certs_max_size = 100 });
			assert.is_false(loaded);
			assert.matches("client_certs_max_size must be a whole number of bytes, at least 512, got 100", err, 1, true);
		end);

		it("leaves the index unbuilt when storage fails", function ()
			local index_path = tmp_dir .. "/rebuild-retry.sqlite";
			local seed = { alice = { laptop = { name = "laptop"; x509cert = certs.alice.base64 } } };

			local failed = load_module({ client_certs_index_path = index_path }, seed, nil, { get = "disk unavailable" });
			local retried = load_module({ client_certs_index_path = index_path }, seed);

			assert.matches("failed while reading storage: loading the certificates of alice failed: disk unavailable",
				failed.logs_at("error")[1], 1, true);
			assert.matches("Rebuilt the fingerprint index of example.test from storage: 1 certificates",
				retried.logs_at("info")[1], 1, true);
		end);

		it("opens a relative index path under the data folder", function ()
			os.execute("mkdir -p '" .. tmp_dir .. "/data'");
			load_module({ client_certs_index_path = "relative-index.sqlite" });
			assert.is_not_nil(io.open(tmp_dir .. "/data/relative-index.sqlite", "rb"));
		end);

		it("logs an error and still appends when the index cannot open", function ()
			local loaded = load_module({ client_certs_index_path = tmp_dir .. "/missing/index.sqlite" });
			assert.matches("Cannot open the fingerprint index", loaded.logs_at("error")[1], 1, true);

			append(loaded, loaded.session(), "laptop", "alice");

			assert.equal(certs.alice.fingerprint, loaded.data.alice.laptop.fingerprint);
		end);

		it("adds no timer without client_certs_remove_expired_after", function ()
			assert.same({}, load_module().timers);
		end);

		it("adds a timer with client_certs_remove_expired_after", function ()
			local loaded = load_module({ client_certs_remove_expired_after = 86400 });
			assert.equal(1, #loaded.timers);
			assert.equal(1, loaded.timers[1].delay);
		end);
	end);

	describe("items handler", function ()
		it("returns an empty list for an account without certificates", function ()
			local loaded = load_module();
			local result, reply = request(loaded, loaded.session(), saslcert_iq("get", "items"));
			assert.is_true(result);
			assert.same({}, items_of(reply));
		end);

		it("lists an appended certificate with name and x509cert", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");

			local _, reply = request(loaded, session, saslcert_iq("get", "items"));

			assert.same({ { name = "laptop"; x509cert = certs.alice.base64 } }, items_of(reply));
		end);

		it("lists certificates sorted by name", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "phone", "alice_phone");
			append(loaded, session, "laptop", "alice");

			local items = items_of(select(2, request(loaded, session, saslcert_iq("get", "items"))));

			assert.equal("laptop", items[1].name);
			assert.equal("phone", items[2].name);
		end);

		it("lists resources of certificate sessions", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "phone", "alice_phone");
			append(loaded, session, "laptop", "alice");
			loaded.session({ resource = "phone-1"; client_certs_fingerprint = certs.alice_phone.fingerprint });
			loaded.session({ resource = "phone-2"; client_certs_fingerprint = certs.alice_phone.fingerprint });
			loaded.session({ resource = "other"; client_certs_fingerprint = ("0"):rep(64) });

			local items = items_of(select(2, request(loaded, session, saslcert_iq("get", "items"))));

			assert.equal("laptop", items[1].name);
			assert.is_nil(items[1].resources);
			assert.equal("phone", items[2].name);
			assert.same({ "phone-1", "phone-2" }, items[2].resources);
		end);

		it("lists a record written by the community module", function ()
			-- COMPAT: the community module stored x509cert as the client sent
			-- it, possibly wrapped, and no SHA-256 fingerprint.
			local wrapped = certs.alice.base64:gsub("(" .. ("."):rep(64) .. ")", "%1\n");
			local loaded = load_module(nil, {
				alice = { old = { name = "old"; x509cert = wrapped; no_cert_management = false; pem = certs.alice.pem } };
			});
			local session = loaded.session();
			loaded.session({ resource = "phone"; client_certs_fingerprint = certs.alice.fingerprint });

			local items = items_of(select(2, request(loaded, session, saslcert_iq("get", "items"))));

			assert.same({ { name = "old"; x509cert = wrapped; resources = { "phone" } } }, items);
		end);

		it("lists certificates from a session with no-cert-management", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local restricted = loaded.session({ resource = "kiosk"; client_certs_no_management = true });

			local items = items_of(select(2, request(loaded, restricted, saslcert_iq("get", "items"))));

			assert.equal(1, #items);
		end);

		it("returns forbidden on an unencrypted session", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session({ secure = false }), saslcert_iq("get", "items"));
			local error_type, condition = error_of(reply);
			assert.equal("auth", error_type);
			assert.equal("forbidden", condition);
		end);

		it("returns internal-server-error when storage cannot load", function ()
			local loaded = load_module();
			loaded.store_failures.get = "disk on fire";

			local _, reply = request(loaded, loaded.session(), saslcert_iq("get", "items"));

			local error_type, condition = error_of(reply);
			assert.equal("wait", error_type);
			assert.equal("internal-server-error", condition);
			assert.matches("disk on fire", loaded.logs_at("error")[1], 1, true);
		end);
	end);

	describe("append handler", function ()
		it("stores a record with the certificate's facts", function ()
			local loaded = load_module();
			local before = os.time();

			local result, reply = request(loaded, loaded.session(), append_iq("laptop", certs.alice.base64));

			assert.is_true(result);
			assert.equal("result", reply.attr.type);
			local record = loaded.data.alice.laptop;
			assert.equal("laptop", record.name);
			assert.equal(certs.alice.base64, record.x509cert);
			assert.matches("^" .. ("%x"):rep(64) .. "$", record.fingerprint);
			assert.equal(certs.alice.fingerprint, record.fingerprint);
			assert.is_false(record.no_cert_management);
			assert.equal(30 * 86400, record.not_after - record.not_before);
			assert.is_true(record.added >= before and record.added <= os.time());
		end);

		it("stores the no-cert-management flag", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "kiosk", "alice", true);
			assert.is_true(loaded.data.alice.kiosk.no_cert_management);
		end);

		it("accepts base64 wrapped with whitespace and stores it on one line", function ()
			local loaded = load_module();
			local wrapped = "\n " .. certs.alice.base64:gsub("(" .. ("."):rep(64) .. ")", "%1\r\n\t") .. " ";

			local _, reply = request(loaded, loaded.session(), append_iq("laptop", wrapped));

			assert.equal("result", reply.attr.type, tostring(reply));
			assert.equal(certs.alice.base64, loaded.data.alice.laptop.x509cert);
		end);

		it("logs the added certificate at info", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local lines = loaded.logs_at("info");
			assert.matches(certs.alice.fingerprint, lines[#lines], 1, true);
			assert.matches("alice@example.test", lines[#lines], 1, true);
		end);

		it("returns conflict for a duplicate name", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");

			local _, reply = request(loaded, session, append_iq("laptop", certs.alice_phone.base64));

			local error_type, condition, text = error_of(reply);
			assert.equal("cancel", error_type);
			assert.equal("conflict", condition);
			assert.matches("laptop", text, 1, true);
			assert.equal(certs.alice.fingerprint, loaded.data.alice.laptop.fingerprint);
			assert.equal(1, count_keys(loaded.data.alice));
		end);

		it("returns conflict for the same certificate under a second name", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");

			local _, reply = request(loaded, session, append_iq("again", certs.alice.base64));

			local _, condition, text = error_of(reply);
			assert.equal("conflict", condition);
			assert.matches("already registered under the name \"laptop\"", text, 1, true);
		end);

		it("returns conflict for a certificate registered on another account", function ()
			local loaded = load_module({ client_certs_require_xmpp_addr = false });
			append(loaded, loaded.session({ username = "bob" }), "shared", "no_addr");

			local _, reply = request(loaded, loaded.session(), append_iq("shared", certs.no_addr.base64));

			local _, condition, text = error_of(reply);
			assert.equal("conflict", condition);
			assert.matches("another account", text, 1, true);
			assert.is_nil(loaded.data.alice);
		end);

		it("returns bad-request without a name", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq(nil, certs.alice.base64));
			local error_type, condition, text = error_of(reply);
			assert.equal("modify", error_type);
			assert.equal("bad-request", condition);
			assert.matches("name is missing", text, 1, true);
		end);

		it("returns bad-request without an x509cert", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq("laptop", nil));
			local _, condition, text = error_of(reply);
			assert.equal("bad-request", condition);
			assert.matches("x509cert is missing", text, 1, true);
		end);

		it("returns bad-request for a name over 1023 characters", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq(("n"):rep(1024), certs.alice.base64));
			local _, condition, text = error_of(reply);
			assert.equal("bad-request", condition);
			assert.matches("1024 characters", text, 1, true);
		end);

		it("returns not-acceptable with a reason for invalid base64", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq("laptop", "not base64 at all!"));
			local error_type, condition, text = error_of(reply);
			assert.equal("modify", error_type);
			assert.equal("not-acceptable", condition);
			assert.matches("invalid certificate", text, 1, true);
			assert.is_nil(loaded.data.alice);
		end);

		it("returns not-acceptable for an expired certificate", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq("old", certs.expired.base64));
			local _, condition, text = error_of(reply);
			assert.equal("not-acceptable", condition);
			assert.matches("expired", text, 1, true);
			assert.is_nil(loaded.data.alice);
		end);

		it("returns not-acceptable for a certificate not yet valid", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq("future", certs.not_yet_valid.base64));
			local _, condition, text = error_of(reply);
			assert.equal("not-acceptable", condition);
			assert.matches("not yet valid", text, 1, true);
		end);

		it("returns not-acceptable for a certificate naming another account", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq("bobs", certs.bob.base64));
			local error_type, condition, text = error_of(reply);
			assert.equal("modify", error_type);
			assert.equal("not-acceptable", condition);
			assert.matches("bob@example.test", text, 1, true);
			assert.is_nil(loaded.data.alice);
		end);

		it("returns not-acceptable for a certificate without xmppAddr", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq("laptop", certs.no_addr.base64));
			local _, condition, text = error_of(reply);
			assert.equal("not-acceptable", condition);
			assert.matches("id-on-xmppAddr", text, 1, true);
		end);

		it("accepts a certificate without xmppAddr when the option allows", function ()
			local loaded = load_module({ client_certs_require_xmpp_addr = false });
			append(loaded, loaded.session(), "laptop", "no_addr");
			assert.equal(certs.no_addr.fingerprint, loaded.data.alice.laptop.fingerprint);
		end);

		it("returns not-acceptable for extendedKeyUsage serverAuth only", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), append_iq("server", certs.server_only.base64));
			local _, condition, text = error_of(reply);
			assert.equal("not-acceptable", condition);
			assert.matches("clientAuth", text, 1, true);
		end);

		it("returns not-acceptable for an issuer outside the trusted CAs", function ()
			local loaded = load_module({ client_certs_trusted_cas = tmp_dir .. "/ca.pem" });
			local _, reply = request(loaded, loaded.session(), append_iq("laptop", certs.alice.base64));
			local _, condition, text = error_of(reply);
			assert.equal("not-acceptable", condition);
			assert.matches("not issued by a trusted CA", text, 1, true);
			assert.is_nil(loaded.data.alice);
		end);

		it("accepts a certificate issued by a trusted CA", function ()
			local loaded = load_module({ client_certs_trusted_cas = tmp_dir .. "/ca.pem" });
			append(loaded, loaded.session(), "laptop", "alice_by_ca");
			assert.equal(certs.alice_by_ca.fingerprint, loaded.data.alice.laptop.fingerprint);
		end);

		it("returns policy-violation over client_certs_max_size", function ()
			local loaded = load_module({ client_certs_max_size = 512 });
			local _, reply = request(loaded, loaded.session(), append_iq("laptop", certs.alice_rsa.base64));
			local error_type, condition, text = error_of(reply);
			assert.equal("modify", error_type);
			assert.equal("policy-violation", condition);
			assert.matches("the limit is 512 bytes", text, 1, true);
		end);

		it("returns policy-violation over client_certs_max_per_user", function ()
			local loaded = load_module({ client_certs_max_per_user = 1 });
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");

			local _, reply = request(loaded, session, append_iq("phone", certs.alice_phone.base64));

			local error_type, condition, text = error_of(reply);
			assert.equal("cancel", error_type);
			assert.equal("policy-violation", condition);
			assert.matches("holds 1 certificates and the maximum is 1", text, 1, true);
			assert.equal(1, count_keys(loaded.data.alice));
		end);

		it("returns internal-server-error on failed save", function ()
			local loaded = load_module();
			loaded.store_failures.set = "database is locked";

			local _, reply = request(loaded, loaded.session(), append_iq("laptop", certs.alice.base64));

			local error_type, condition = error_of(reply);
			assert.equal("wait", error_type);
			assert.equal("internal-server-error", condition);
			local errors = loaded.logs_at("error");
			assert.equal(1, #errors);
			assert.matches("database is locked", errors[1], 1, true);
			assert.is_nil(loaded.data.alice);
		end);

		it("returns forbidden to a session with no-cert-management", function ()
			local loaded = load_module();
			local session = loaded.session({ client_certs_no_management = true });
			local _, reply = request(loaded, session, append_iq("laptop", certs.alice.base64));
			local error_type, condition = error_of(reply);
			assert.equal("auth", error_type);
			assert.equal("forbidden", condition);
			assert.is_nil(loaded.data.alice);
		end);

		it("returns forbidden to an unencrypted session", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session({ secure = false }), append_iq("laptop", certs.alice.base64));
			local _, condition, text = error_of(reply);
			assert.equal("forbidden", condition);
			assert.matches("encrypted", text, 1, true);
			assert.is_nil(loaded.data.alice);
		end);
	end);

	describe("disable handler", function ()
		it("returns item-not-found for an unknown name", function ()
			local loaded = load_module();
			local session = loaded.session();
			local _, reply = request(loaded, session, saslcert_iq("set", "disable", { { name = "name"; text = "nope" } }));
			local error_type, condition = error_of(reply);
			assert.equal("cancel", error_type);
			assert.equal("item-not-found", condition);
		end);

		it("returns bad-request for a request without a name", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(), saslcert_iq("set", "disable"));
			local _, condition = error_of(reply);
			assert.equal("bad-request", condition);
		end);

		it("removes the certificate and leaves its sessions open", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");
			append(loaded, session, "phone", "alice_phone");
			local cert_session = loaded.session({ resource = "cert"; client_certs_fingerprint = certs.alice.fingerprint });

			local result, reply = request(loaded, session,
				saslcert_iq("set", "disable", { { name = "name"; text = "laptop" } }));

			assert.is_true(result);
			assert.equal("result", reply.attr.type);
			assert.is_nil(loaded.data.alice.laptop);
			assert.is_table(loaded.data.alice.phone);
			assert.same({}, cert_session.close_calls);
		end);

		it("returns forbidden to no-cert-management session", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local restricted = loaded.session({ resource = "kiosk"; client_certs_no_management = true });

			local _, reply = request(loaded, restricted,
				saslcert_iq("set", "disable", { { name = "name"; text = "laptop" } }));

			assert.equal("forbidden", select(2, error_of(reply)));
			assert.is_table(loaded.data.alice.laptop);
		end);
	end);

	describe("revoke handler", function ()
		it("closes the sessions logged in with the certificate", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");
			append(loaded, session, "phone", "alice_phone");
			local laptop = loaded.session({ resource = "cert-laptop"; client_certs_fingerprint = certs.alice.fingerprint });
			local phone = loaded.session({ resource = "cert-phone"; client_certs_fingerprint = certs.alice_phone.fingerprint });

			local _, reply = request(loaded, session,
				saslcert_iq("set", "revoke", { { name = "name"; text = "laptop" } }));

			assert.equal("result", reply.attr.type);
			assert.is_nil(loaded.data.alice.laptop);
			assert.equal(1, #laptop.close_calls);
			assert.equal("not-authorized", laptop.close_calls[1].condition);
			assert.matches("revoked", laptop.close_calls[1].text, 1, true);
			assert.same({}, phone.close_calls);
			assert.same({}, session.close_calls);
		end);

		it("removes the last certificate and deletes the account's record table", function ()
			local loaded = load_module();
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");

			request(loaded, session, saslcert_iq("set", "revoke", { { name = "name"; text = "laptop" } }));

			assert.is_nil(loaded.data.alice);
		end);

		it("returns item-not-found when revoking an unknown name", function ()
			local loaded = load_module();
			local _, reply = request(loaded, loaded.session(),
				saslcert_iq("set", "revoke", { { name = "name"; text = "nope" } }));
			assert.equal("item-not-found", select(2, error_of(reply)));
		end);
	end);

	describe("XEP-0077 register hook", function ()
		local event_name = "iq/self/" .. XMLNS_REGISTER .. ":query";

		local function register_iq(iq_type, remove)
			local iq = st.iq({ type = iq_type; id = "reg-1" }):tag("query", { xmlns = XMLNS_REGISTER });
			if remove then
				iq:tag("remove"):up();
			elseif iq_type == "set" then
				iq:text_tag("username", "alice"):text_tag("password", "new-password");
			end
			return iq:up();
		end

		-- Returns the value of each field of a data form, keyed by var.
		local function form_fields(form)
			local fields = {};
			for field in form:childtags("field") do
				fields[field.attr.var] = field:get_child_text("value") or "";
			end
			return fields;
		end

		it("runs before mod_register_ibr at priority 10", function ()
			assert.equal(10, load_module().priority(event_name));
		end);

		it("rejects password change with the form", function ()
			local loaded = load_module();
			local session = loaded.session({ client_certs_fingerprint = certs.alice.fingerprint; client_certs_name = "laptop" });

			local result = loaded.fire(event_name, { origin = session; stanza = register_iq("set") });

			assert.is_true(result);
			local reply = session.sent[1];
			local error_type, condition = error_of(reply);
			assert.equal("modify", error_type);
			assert.equal("not-authorized", condition);
			local form = reply:get_child("query", XMLNS_REGISTER):get_child("x", "jabber:x:data");
			assert.equal("form", form.attr.type);
			local fields = form_fields(form);
			assert.equal("jabber:iq:register:changepassword", fields.FORM_TYPE);
			assert.is_not_nil(fields.old_password);
		end);

		it("rejects account removal with not-authorized", function ()
			local loaded = load_module();
			local session = loaded.session({ client_certs_fingerprint = certs.alice.fingerprint; client_certs_name = "laptop" });

			assert.is_true(loaded.fire(event_name, { origin = session; stanza = register_iq("set", true) }));

			local _, condition, text = error_of(session.sent[1]);
			assert.equal("not-authorized", condition);
			assert.matches("account removal", text, 1, true);
		end);

		it("leaves a set from a password session unhandled", function ()
			local loaded = load_module();
			local session = loaded.session();
			assert.is_nil(loaded.fire(event_name, { origin = session; stanza = register_iq("set") }));
			assert.same({}, session.sent);
		end);

		it("leaves a get from a certificate session unhandled", function ()
			local loaded = load_module();
			local session = loaded.session({ client_certs_fingerprint = certs.alice.fingerprint });
			assert.is_nil(loaded.fire(event_name, { origin = session; stanza = register_iq("get") }));
			assert.same({}, session.sent);
		end);
	end);

	describe("stream-features hook", function ()
		it("runs after mod_saslauth at priority -1", function ()
			assert.equal(-1, load_module().priority("stream-features"));
		end);

		it("offers EXTERNAL for a registered certificate and keeps PLAIN", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local session = unauthed_session(loaded, "alice");

			local features = offer(loaded, session);

			assert.same({ "PLAIN", "EXTERNAL" }, offered_mechanisms(features));
			local mechanisms = session.sasl_handler:mechanisms();
			assert.is_true(mechanisms.EXTERNAL);
			assert.is_true(mechanisms.PLAIN);
		end);

		it("offers nothing more for an unregistered certificate", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local session = unauthed_session(loaded, "alice_phone");
			local handler = session.sasl_handler;

			local features = offer(loaded, session);

			assert.same({ "PLAIN" }, offered_mechanisms(features));
			assert.equal(handler, session.sasl_handler);
		end);

		it("offers nothing more without a client certificate", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local session = unauthed_session(loaded, nil);
			local handler = session.sasl_handler;

			local features = offer(loaded, session);

			assert.same({ "PLAIN" }, offered_mechanisms(features));
			assert.equal(handler, session.sasl_handler);
		end);

		it("offers nothing more to a session without a TLS socket", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local session = unauthed_session(loaded, "alice");
			session.conn = {};

			assert.same({ "PLAIN" }, offered_mechanisms(offer(loaded, session)));
		end);

		it("offers nothing more once the registered certificate has expired", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			loaded.clock = loaded.data.alice.laptop.not_after + 1;

			local session = unauthed_session(loaded, "alice");

			assert.same({ "PLAIN" }, offered_mechanisms(offer(loaded, session)));
		end);

		it("offers EXTERNAL through Prosody 13's conn:ssl_peercertificate()", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local session = unauthed_session(loaded, nil);
			session.conn = {
				ssl_peercertificate = function () return { pem = function () return certs.alice.pem; end }; end;
			};

			assert.same({ "PLAIN", "EXTERNAL" }, offered_mechanisms(offer(loaded, session)));
		end);
	end);

	describe("wrapped SASL handler", function ()
		-- Returns a session offered EXTERNAL for the alice certificate.
		local function offered_session(loaded)
			append(loaded, loaded.session(), "laptop", "alice");
			local session = unauthed_session(loaded, "alice");
			offer(loaded, session);
			assert.is_true(session.sasl_handler:mechanisms().EXTERNAL);
			return session;
		end

		it("sends an empty challenge to EXTERNAL without initial response", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;

			assert.is_true(handler:select("EXTERNAL"));
			local status, data = handler:process(nil);

			assert.equal("challenge", status);
			assert.equal("", data);
		end);

		it("logs in the certificate's account after the empty challenge", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			handler:select("EXTERNAL");
			handler:process(nil);

			local status = handler:process("");

			assert.equal("success", status);
			assert.equal("alice", handler.username);
		end);

		it("logs in with an initial response naming the account", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			handler:select("EXTERNAL");

			assert.equal("success", handler:process("alice@example.test"));
			assert.equal("alice", handler.username);
		end);

		it("returns invalid-authzid for an authzid of another host", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			handler:select("EXTERNAL");

			local status, condition = handler:process("alice@other.test");

			assert.equal("failure", status);
			assert.equal("invalid-authzid", condition);
		end);

		it("returns not-authorized for an authzid of another account", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			handler:select("EXTERNAL");

			local status, condition = handler:process("bob@example.test");

			assert.equal("failure", status);
			assert.equal("not-authorized", condition);
		end);

		it("returns not-authorized after disable", function ()
			local loaded = load_module();
			local session = offered_session(loaded);
			request(loaded, loaded.session(), saslcert_iq("set", "disable", { { name = "name"; text = "laptop" } }));
			local handler = session.sasl_handler;
			handler:select("EXTERNAL");

			local status, condition = handler:process("");

			assert.equal("failure", status);
			assert.equal("not-authorized", condition);
			assert.is_nil(session.client_certs_pending);
		end);

		it("returns not-authorized when the account no longer exists", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			loaded.accounts.alice = nil;
			handler:select("EXTERNAL");

			assert.same({ "failure", "not-authorized" }, { handler:process("") });
		end);

		it("returns credentials-expired after notAfter", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			loaded.clock = loaded.data.alice.laptop.not_after + 1;
			handler:select("EXTERNAL");

			assert.same({ "failure", "credentials-expired" }, { handler:process("") });
		end);

		it("returns account-disabled when usermanager reports the account disabled", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			package.loaded["core.usermanager"].user_is_enabled = function () return false; end;
			handler:select("EXTERNAL");

			assert.same({ "failure", "account-disabled" }, { handler:process("") });
		end);

		it("returns invalid-authzid for two local JIDs", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "shared", "alice_and_bob");
			local session = unauthed_session(loaded, "alice_and_bob");
			offer(loaded, session);
			local handler = session.sasl_handler;
			handler:select("EXTERNAL");

			assert.same({ "failure", "invalid-authzid" }, { handler:process("") });
		end);

		it("logs in the authzid of two local JIDs", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "shared", "alice_and_bob");
			local session = unauthed_session(loaded, "alice_and_bob");
			offer(loaded, session);
			local handler = session.sasl_handler;
			handler:select("EXTERNAL");

			assert.equal("success", handler:process("alice@example.test"));
			assert.equal("alice", handler.username);
		end);

		it("logs in the indexed owner of a certificate without xmppAddr", function ()
			local loaded = load_module({ client_certs_require_xmpp_addr = false });
			append(loaded, loaded.session(), "laptop", "no_addr");
			local session = unauthed_session(loaded, "no_addr");
			offer(loaded, session);
			local handler = session.sasl_handler;
			handler:select("EXTERNAL");

			assert.equal("success", handler:process(""));
			assert.equal("alice", handler.username);
		end);

		it("leaves PLAIN to the original handler", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			assert.is_true(handler:select("PLAIN"));

			assert.equal("success", handler:process("\0alice\0alice-password"));
			assert.equal("alice", handler.username);
		end);

		it("returns a clean clone that still offers EXTERNAL", function ()
			local loaded = load_module();
			local handler = offered_session(loaded).sasl_handler;
			handler:select("EXTERNAL");

			local clone = handler:clean_clone();

			assert.is_nil(clone.selected);
			assert.is_true(clone:mechanisms().EXTERNAL);
			assert.is_true(clone:select("EXTERNAL"));
			assert.equal("success", clone:process(""));
		end);

		it("binds the resource of a full-JID certificate after success", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "phone", "alice_phone_resource", true);
			local session = unauthed_session(loaded, "alice_phone_resource");
			offer(loaded, session);
			session.sasl_handler:select("EXTERNAL");
			assert.equal("success", session.sasl_handler:process(""));

			session.username = session.sasl_handler.username;
			loaded.fire("authentication-success", { session = session });
			local bind = { session = session; resource = "chosen-by-client" };
			loaded.fire("pre-resource-bind", bind);

			assert.equal(certs.alice_phone_resource.fingerprint, session.client_certs_fingerprint);
			assert.equal("phone", session.client_certs_name);
			assert.is_true(session.client_certs_no_management);
			assert.equal("phone", bind.resource);
		end);
	end);

	describe("auth hook", function ()
		local event_name = "stanza/" .. XMLNS_SASL .. ":auth";

		it("runs before mod_saslauth at priority 1", function ()
			assert.equal(1, load_module().priority(event_name));
		end);

		it("replaces a used handler with one offering EXTERNAL", function ()
			local loaded = load_module();
			append(loaded, loaded.session(), "laptop", "alice");
			local session = unauthed_session(loaded, "alice");
			offer(loaded, session);
			session.sasl_handler:select("PLAIN");

			local auth = st.stanza("auth", { xmlns = XMLNS_SASL; mechanism = "EXTERNAL" });
			loaded.fire(event_name, { origin = session; stanza = auth });

			local handler = session.sasl_handler;
			assert.is_nil(handler.selected);
			assert.is_true(handler:select("EXTERNAL"));
			assert.equal("success", handler:process(""));
		end);
	end);

	describe("user-deleted hook", function ()
		it("removes the account's rows from the fingerprint index", function ()
			local loaded = load_module({ client_certs_require_xmpp_addr = false });
			append(loaded, loaded.session(), "laptop", "no_addr");
			assert.same({ "PLAIN", "EXTERNAL" }, offered_mechanisms(offer(loaded, unauthed_session(loaded, "no_addr"))));

			loaded.fire("user-deleted", { username = "alice"; host = HOST });

			-- Without an xmppAddr, only the index links the certificate to alice.
			assert.same({ "PLAIN" }, offered_mechanisms(offer(loaded, unauthed_session(loaded, "no_addr"))));
		end);
	end);

	describe("ad-hoc commands", function ()
		local node_prefix = XMLNS_SASLCERT .. "#";

		-- Runs the ad-hoc command with the given node from a session.
		local function execute(loaded, session, node, form)
			for _, command in ipairs(loaded.items["adhoc-provider"] or {}) do
				if command.node == node_prefix .. node then
					return command:handler({ from = session.full_jid; action = "execute"; form = form });
				end
			end
			error("no ad-hoc command " .. node);
		end

		local function add_form(name, cert_name)
			return st.stanza("x", { xmlns = "jabber:x:data"; type = "submit" })
				:tag("field", { var = "FORM_TYPE" }):text_tag("value", node_prefix .. "add"):up()
				:tag("field", { var = "name" }):text_tag("value", name):up()
				:tag("field", { var = "cert" }):text_tag("value", certs[cert_name].base64):up()
				:tag("field", { var = "manage" }):text_tag("value", "1"):up();
		end

		it("provides list, add, disable and revoke", function ()
			local nodes = {};
			for _, command in ipairs(load_module().items["adhoc-provider"]) do
				nodes[#nodes + 1] = command.node;
				assert.equal("local_user", command.permission);
			end
			table.sort(nodes);
			assert.same({ node_prefix .. "add", node_prefix .. "disable", node_prefix .. "list", node_prefix .. "revoke" },
				nodes);
		end);

		it("adds a certificate from a submitted form", function ()
			local loaded = load_module();

			local result = execute(loaded, loaded.session(), "add", add_form("laptop", "alice"));

			assert.equal("completed", result.status);
			assert.is_nil(result.error);
			assert.equal(certs.alice.fingerprint, loaded.data.alice.laptop.fingerprint);
		end);

		it("rejects an add from a session with no-cert-management", function ()
			local loaded = load_module();
			local session = loaded.session({ client_certs_no_management = true });

			local result = execute(loaded, session, "add", add_form("laptop", "alice"));

			assert.matches("may not manage certificates", result.error.message, 1, true);
			assert.is_nil(loaded.data.alice);
		end);

		-- The XEP-0257 handlers reject unencrypted sessions, and the ad-hoc
		-- commands are another way to do the same management.
		it("rejects an add from an unencrypted session", function ()
			local loaded = load_module();
			local session = loaded.session({ secure = false });

			local result = execute(loaded, session, "add", add_form("laptop", "alice"));

			assert.is_nil(loaded.data.alice, "the certificate was stored");
			assert.is_table(result.error, "the command completed without an error note");
		end);
	end);

	describe("remove_expired timer", function ()
		it("deletes certificates expired longer than allowed", function ()
			local loaded = load_module({ client_certs_remove_expired_after = 86400 });
			local session = loaded.session();
			append(loaded, session, "laptop", "alice");
			append(loaded, session, "phone", "alice_phone");
			local not_after = loaded.data.alice.laptop.not_after;
			loaded.clock = not_after + 86400 + 1;

			local next_run = loaded.timers[1].callback();

			assert.equal(3600, next_run);
			assert.is_nil(loaded.data.alice);
		end);

		it("keeps recently expired certificates", function ()
			local loaded = load_module({ client_certs_remove_expired_after = 86400 });
			append(loaded, loaded.session(), "laptop", "alice");
			loaded.clock = loaded.data.alice.laptop.not_after + 60;

			loaded.timers[1].callback();

			assert.is_table(loaded.data.alice.laptop);
		end);
	end);
end);
