-- prosodyctl mod_client_certs: manage certificates without a running server.
--
-- prosodyctl loads the module once for the global host "*" and calls
-- module.command. The command runs the module file for the JID's host in
-- the prosodyctl process, which opens that host's storage and index, and
-- then calls the same functions as the XEP-0257 handlers. Sessions live in
-- the server process, so a revoke from here cannot close them, and the
-- command prints how to do that instead.

local jid = require "util.jid";
local storagemanager = require "core.storagemanager";
local usermanager = require "core.usermanager";
local unpack = table.unpack or unpack; -- luacheck: ignore 113

local usage = [[
usage: prosodyctl mod_client_certs list JID
       prosodyctl mod_client_certs add JID NAME CERTIFICATE-FILE
       prosodyctl mod_client_certs disable JID NAME
       prosodyctl mod_client_certs revoke JID NAME]];

-- Number of arguments after the action that each action needs.
local argument_count = { list = 1; add = 3; disable = 2; revoke = 2 };

-- Sets module.command. apis is the shared table in which each host's loaded
-- module stores its management functions.
return function (apis)
	function module.command(arg)
		local action = arg[1];
		local needed = argument_count[action or ""];
		if not needed or #arg - 1 < needed then
			print(usage);
			return 2;
		end

		local user_jid = arg[2];
		local username, host = jid.split(user_jid);
		if not username or not prosody.hosts[host] then
			print(("%s is not a user JID of a host in this configuration"):format(tostring(user_jid)));
			return 1;
		end

		storagemanager.initialize_host(host);
		usermanager.initialize_host(host);
		-- Prosody does not load a module for a host while it is loaded
		-- globally, so this global instance becomes the host's: it runs the
		-- module file again with module.host set, as mod_invites does.
		module.host = host;
		local loaded, err = pcall(module.require, module, "mod_client_certs");
		if not loaded then
			print(("cannot start mod_client_certs for %s: %s"):format(host, tostring(err)));
			return 1;
		end
		local api = apis[host];
		if not api then
			print(("mod_client_certs did not start on %s; check its log lines above"):format(host));
			return 1;
		end

		-- The shell actions print through shell.session.print.
		local output = { session = { print = print } };
		local ok, message = api[action](output, username, unpack(arg, 3));
		print((ok and "" or "Error: ") .. tostring(message));
		if ok and action == "revoke" then
			print("prosodyctl cannot reach the sessions of a running server: to close them,"
				.. " use prosodyctl shell client_certs revoke instead.");
		end
		return ok and 0 or 1;
	end
end
