-- luacheck configuration for the Prosody module and the busted specs.
std = "lua54"
max_line_length = 120

files["lua/"] = {
	-- Prosody runs each module with these globals in its environment.
	globals = { "module" };
	read_globals = { "prosody" };
}

files["spec/"] = {
	std = "+busted";
}
