-- Ad-hoc commands (XEP-0050) and admin shell commands for mod_client_certs.
--
-- Every command calls the same management functions as the XEP-0257
-- handlers in mod_client_certs.lua.

local jid = require "util.jid";
local usermanager = require "core.usermanager";

-- Sets up the commands. core contains the shared functions and settings of
-- mod_client_certs.lua.
return function (core)
	local host, make_error = core.host, core.make_error;
	local check_session, check_may_manage = core.check_session, core.check_may_manage;
	local add_certificate, list_certificates = core.add_certificate, core.list_certificates;
	local remove_certificate = core.remove_certificate;

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
		local info = ("Added certificate %q (SHA-256 %s)."):format(record.name, record.fingerprint);
		return { status = "completed", info = info };
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
			if #list > 0 then
				shell.session.print("name, SHA-256 fingerprint, notAfter, resources logged in with it");
			end
			for _, item in ipairs(list) do
				shell.session.print(describe_certificate(item));
			end
			return true, ("%d certificates"):format(#list);
		end;
		add = function (_, username, name, path)
			if not usermanager.user_exists(username, host) then
				return nil, ("account %s@%s does not exist; create it first"):format(username, host);
			end
			-- io.open's message already starts with the path.
			local file, open_err = io.open(path, "rb");
			if not file then return nil, ("cannot read the certificate file: %s"):format(open_err); end
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
			local record, err, closed = remove_certificate(username, name, true);
			if not record then return nil, err.text; end
			return true, ("revoked %q and closed %d sessions that used it"):format(name, closed);
		end;
	};

	-- prosodyctl mod_client_certs finds these actions here by host.
	local actions_by_host = module:shared("/*/client_certs/actions");
	actions_by_host[host] = shell_actions;
	-- Shell handlers of this host, for Prosody 0.12's shared shell.
	local handlers_by_host = module:shared("/*/client_certs/shell_handlers");
	function module.unload()
		actions_by_host[host] = nil;
		handlers_by_host[host] = nil;
	end

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

	-- Returns a usage line when an argument is missing.
	local function check_arguments(action, ...)
		local names = shell_help[action][2];
		local passed_count = select("#", ...);
		for i = 1, #names do
			local value = i <= passed_count and select(i, ...) or nil;
			if type(value) ~= "string" or value == "" then
				local quoted = {};
				for j, arg_name in ipairs(names) do quoted[j] = ("%q"):format(arg_name); end
				return ("missing argument %s; usage: client_certs:%s(%s)"):format(names[i], action,
					table.concat(quoted, ", "));
			end
		end
	end

	local function shell_handler(action)
		return function (shell, user_jid, ...)
			local usage = check_arguments(action, user_jid, ...);
			if usage then return nil, usage; end
			local username, err = shell_account(user_jid);
			if not username then return nil, err; end
			return shell_actions[action](shell, username, ...);
		end;
	end

	if core.prosody_major >= 13 then
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
		handlers_by_host[host] = {};
		for action in pairs(shell_help) do
			handlers_by_host[host][action] = shell_handler(action);
		end

		local shell_env = module:shared("/*/admin_shell/env");
		shell_env.client_certs = shell_env.client_certs or {};
		for action in pairs(shell_help) do
			shell_env.client_certs[action] = function (shell, user_jid, ...)
				local usage = check_arguments(action, user_jid, ...);
				if usage then return nil, usage; end
				local handlers = handlers_by_host[jid.host(user_jid) or ""];
				if not handlers then
					return nil, ("mod_client_certs is not loaded on the host of %s"):format(tostring(user_jid));
				end
				return handlers[action](shell, user_jid, ...);
			end;
		end
	end
end
