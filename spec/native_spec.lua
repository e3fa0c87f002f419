-- Specs for the native library client_certs.so, loaded into a real Lua.
--
-- Certificates are made fresh on each run with the openssl CLI in a
-- temporary folder. Every time-dependent check passes a time derived from
-- the certificate's own notBefore and notAfter, never the clock.
--
-- The library is loaded from build/mod_client_certs/ (run `make build`
-- first), or from the folder named by CLIENT_CERTS_LIB_DIR, which lets the
-- same spec run against a library built for another Lua version.

local lib_dir = os.getenv("CLIENT_CERTS_LIB_DIR") or "build/mod_client_certs";
package.cpath = lib_dir .. "/?.so;" .. package.cpath;

local cc = require "client_certs";

local DAY = 86400;
local XMPP_ADDR = "otherName:1.3.6.1.5.5.7.8.5;";

-- Folder holding this run's certificates, and the files read from it.
local tmp_dir;
local files = {};

local function read_file(name)
	local f = assert(io.open(tmp_dir .. "/" .. name, "rb"));
	local content = f:read("*a");
	f:close();
	return content;
end

-- Runs a shell command, sending stderr to openssl.log in tmp_dir.
local function run(command)
	local ok = os.execute("cd " .. tmp_dir .. " && " .. command .. " 2>>openssl.log");
	-- Lua 5.1 and LuaJIT return the exit status, but Lua 5.2 and later return true.
	if ok ~= true and ok ~= 0 then
		error(("command failed: %s\n%s"):format(command, read_file("openssl.log")));
	end
end

local function read_command(command)
	local pipe = assert(io.popen("cd " .. tmp_dir .. " && " .. command .. " 2>>openssl.log"));
	local output = pipe:read("*a");
	pipe:close();
	return output;
end

-- Makes a self-signed P-256 certificate `name`.pem with the given -addext
-- values, and its key `name`.key.
local function self_signed(name, subject, extensions)
	local command = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
		.. " -keyout %s.key -out %s.pem -days 30 -subj '%s'"):format(name, name, subject);
	for _, extension in ipairs(extensions) do
		command = command .. (" -addext '%s'"):format(extension);
	end
	run(command);
	files[name] = read_file(name .. ".pem");
end

-- Makes `name`.pem for a fresh P-256 key, signed by the CA `ca_name`, with
-- the given -addext values copied from the request.
local function signed_by(ca_name, name, subject, extensions)
	local command = ("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
		.. " -keyout %s.key -out %s.csr -subj '%s'"):format(name, name, subject);
	for _, extension in ipairs(extensions) do
		command = command .. (" -addext '%s'"):format(extension);
	end
	run(command);
	run(("openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -days 30"
		.. " -copy_extensions copy -out %s.pem"):format(name, ca_name, ca_name, name));
	files[name] = read_file(name .. ".pem");
end

local function make_certificates()
	self_signed("alice", "/CN=x", { "subjectAltName=" .. XMPP_ADDR .. "UTF8:alice@example.test" });
	self_signed("no_addr", "/CN=no address", { "subjectAltName=DNS:client.example.test" });
	self_signed("several", "/CN=several", {
		"subjectAltName=" .. XMPP_ADDR .. "UTF8:alice@example.test,"
			.. XMPP_ADDR .. "UTF8:alice@example.test/phone,"
			.. XMPP_ADDR .. "IA5STRING:mallory@example.test",
	});
	self_signed("server_only", "/CN=server only", {
		"subjectAltName=" .. XMPP_ADDR .. "UTF8:alice@example.test",
		"extendedKeyUsage=serverAuth",
	});
	self_signed("no_signature_usage", "/CN=key encipherment", {
		"subjectAltName=" .. XMPP_ADDR .. "UTF8:alice@example.test",
		"keyUsage=critical,keyEncipherment",
	});
	self_signed("ca", "/CN=Example Test CA", {
		"basicConstraints=critical,CA:TRUE",
		"keyUsage=critical,keyCertSign,cRLSign",
	});
	signed_by("ca", "leaf", "/CN=alice", {
		"subjectAltName=" .. XMPP_ADDR .. "UTF8:alice@example.test",
		"extendedKeyUsage=clientAuth",
	});
	signed_by("ca", "leaf_server", "/CN=alice server", {
		"subjectAltName=" .. XMPP_ADDR .. "UTF8:alice@example.test",
		"extendedKeyUsage=serverAuth",
	});

	run("openssl x509 -in alice.pem -outform DER -out alice.der");
	files.alice_der = read_file("alice.der");
	files.alice_base64 = read_command("openssl base64 -A -in alice.der");
	files.alice_base64_wrapped = read_command("openssl base64 -in alice.der");
	local fingerprint = read_command("openssl x509 -in alice.pem -noout -fingerprint -sha256");
	files.alice_fingerprint = fingerprint:match("=([%x:]+)"):gsub(":", ""):lower();
end

local function parse_file(name)
	return assert(cc.parse(files[name]));
end

describe("client_certs native library", function ()
	setup(function ()
		local pipe = assert(io.popen("mktemp -d"));
		tmp_dir = pipe:read("*l");
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

	describe("exports", function ()
		it("include the default size limit in bytes", function ()
			assert.equal(16384, cc.default_max_size);
		end);

		it("include a semantic version string", function ()
			assert.matches("^%d+%.%d+%.%d+", cc.version);
		end);
	end);

	describe("#parse()", function ()
		it("accepts PEM", function ()
			local cert = cc.parse(files.alice);
			assert.equal("userdata", type(cert));
		end);

		it("accepts DER", function ()
			local cert = assert(cc.parse(files.alice_der));
			assert.equal(files.alice_fingerprint, cert.fingerprint);
		end);

		it("accepts base64 DER on one line", function ()
			local cert = assert(cc.parse(files.alice_base64));
			assert.equal(files.alice_fingerprint, cert.fingerprint);
		end);

		it("accepts base64 DER wrapped with whitespace", function ()
			local wrapped = "\n  " .. files.alice_base64_wrapped:gsub("\n", "\r\n\t") .. "  ";
			local cert = assert(cc.parse(wrapped));
			assert.equal(files.alice_fingerprint, cert.fingerprint);
		end);

		it("accepts a DER exactly at the size limit", function ()
			local cert = cc.parse(files.alice_der, #files.alice_der);
			assert.equal("userdata", type(cert));
		end);

		it("returns malformed for text that is not a certificate", function ()
			local cert, code, message = cc.parse("not a certificate");
			assert.is_nil(cert);
			assert.equal("malformed", code);
			assert.matches("invalid certificate", message, 1, true);
		end);

		it("returns malformed for an empty string", function ()
			local _, code = cc.parse("");
			assert.equal("malformed", code);
		end);

		it("returns malformed for a private key", function ()
			local _, code, message = cc.parse(read_file("alice.key"));
			assert.equal("malformed", code);
			assert.matches("PRIVATE KEY", message, 1, true);
		end);

		it("returns malformed for truncated DER", function ()
			local _, code = cc.parse(files.alice_der:sub(1, -2));
			assert.equal("malformed", code);
		end);

		it("returns malformed for bytes after the DER", function ()
			local _, code, message = cc.parse(files.alice_der .. "\0");
			assert.equal("malformed", code);
			assert.matches("trailing", message, 1, true);
		end);

		it("returns malformed for binary junk under the limit", function ()
			local _, code = cc.parse(("\0\255"):rep(512 * 1024), 2 * 1024 * 1024);
			assert.equal("malformed", code);
		end);

		it("returns too-large for a DER over the limit", function ()
			local cert, code, message = cc.parse(files.alice_der, #files.alice_der - 1);
			assert.is_nil(cert);
			assert.equal("too-large", code);
			assert.matches(("%d bytes"):format(#files.alice_der), message, 1, true);
		end);

		it("returns too-large for 1 MiB of junk", function ()
			local _, code = cc.parse(("\0\255"):rep(512 * 1024));
			assert.equal("too-large", code);
		end);

		it("raises an error for a missing input", function ()
			local ok, err = pcall(cc.parse);
			assert.is_false(ok);
			assert.matches("bad argument #1", tostring(err), 1, true);
		end);

		it("raises an error for a table input", function ()
			assert.has_error(function () cc.parse({}); end);
		end);

		it("raises an error for a boolean input", function ()
			assert.has_error(function () cc.parse(true); end);
		end);

		it("raises an error for a size limit that is not a number", function ()
			assert.has_error(function () cc.parse(files.alice, "large"); end);
		end);

		it("raises an error for a zero size limit", function ()
			assert.has_error(function () cc.parse(files.alice, 0); end);
		end);

		it("raises an error for a negative size limit", function ()
			assert.has_error(function () cc.parse(files.alice, -1); end);
		end);
	end);

	describe("certificate", function ()
		it("has the SHA-256 fingerprint openssl computes", function ()
			assert.equal(files.alice_fingerprint, parse_file("alice").fingerprint);
		end);

		it("has a fingerprint of 64 lowercase hex digits", function ()
			assert.matches("^" .. ("[0-9a-f]"):rep(64) .. "$", parse_file("alice").fingerprint);
		end);

		it("has integer notBefore and notAfter 30 days apart", function ()
			local cert = parse_file("alice");
			assert.equal("number", type(cert.not_before));
			assert.equal(math.floor(cert.not_before), cert.not_before);
			assert.equal(30 * DAY, cert.not_after - cert.not_before);
		end);

		it("has the subject in RFC 4514 form", function ()
			assert.equal("CN=x", parse_file("alice").subject);
		end);

		it("has the issuer of a self-signed certificate equal to its subject", function ()
			assert.equal("CN=x", parse_file("alice").issuer);
		end);

		it("has the issuer of a CA-signed certificate naming the CA", function ()
			assert.equal("CN=Example Test CA", parse_file("leaf").issuer);
		end);

		it("has the DER size in bytes", function ()
			assert.equal(#files.alice_der, parse_file("alice").size);
		end);

		it("has the DER bytes", function ()
			assert.equal(files.alice_der, parse_file("alice").der);
		end);

		it("has the base64 DER on one line", function ()
			assert.equal(files.alice_base64, parse_file("alice").base64);
		end);

		it("returns the PEM openssl wrote", function ()
			assert.equal(files.alice, parse_file("alice"):pem());
		end);

		it("lists the xmppAddr as an array", function ()
			assert.same({ "alice@example.test" }, parse_file("alice").xmpp_addrs);
		end);

		it("lists no skipped xmppAddr when all are UTF8String", function ()
			assert.same({}, parse_file("alice").skipped_xmpp_addrs);
		end);

		it("lists no xmppAddr when subjectAltName has none", function ()
			assert.same({}, parse_file("no_addr").xmpp_addrs);
		end);

		it("lists several xmppAddrs in certificate order", function ()
			assert.same({ "alice@example.test", "alice@example.test/phone" },
				parse_file("several").xmpp_addrs);
		end);

		it("lists the reason for an IA5String xmppAddr", function ()
			local skipped = parse_file("several").skipped_xmpp_addrs;
			assert.equal(1, #skipped);
			assert.matches("expected UTF8String", skipped[1], 1, true);
		end);

		it("converts to a string naming the fingerprint", function ()
			local cert = parse_file("alice");
			assert.matches(cert.fingerprint, tostring(cert), 1, true);
		end);
	end);

	describe("#check_validity()", function ()
		it("returns true within the validity period", function ()
			local cert = parse_file("alice");
			assert.is_true(cert:check_validity(cert.not_before + DAY));
		end);

		it("returns true at notBefore and at notAfter", function ()
			local cert = parse_file("alice");
			assert.is_true(cert:check_validity(cert.not_before));
			assert.is_true(cert:check_validity(cert.not_after));
		end);

		it("returns expired after notAfter", function ()
			local cert = parse_file("alice");
			local ok, code, message = cert:check_validity(cert.not_after + 1);
			assert.is_nil(ok);
			assert.equal("expired", code);
			assert.matches("certificate expired", message, 1, true);
		end);

		it("returns not-yet-valid before notBefore", function ()
			local cert = parse_file("alice");
			local ok, code, message = cert:check_validity(cert.not_before - 1);
			assert.is_nil(ok);
			assert.equal("not-yet-valid", code);
			assert.matches("not yet valid", message, 1, true);
		end);

		it("raises an error for a time that is not a number", function ()
			local cert = parse_file("alice");
			assert.has_error(function () cert:check_validity("tomorrow"); end);
		end);

		it("raises an error for a missing time", function ()
			local cert = parse_file("alice");
			assert.has_error(function () cert:check_validity(); end);
		end);

		it("raises an error when called on a table", function ()
			local cert = parse_file("alice");
			assert.has_error(function () cert.check_validity({}, cert.not_before); end);
		end);
	end);

	describe("#check_client_usage()", function ()
		it("returns true without extendedKeyUsage", function ()
			assert.is_true(parse_file("alice"):check_client_usage());
		end);

		it("returns true for extendedKeyUsage clientAuth", function ()
			assert.is_true(parse_file("leaf"):check_client_usage());
		end);

		it("returns bad-key-usage for extendedKeyUsage serverAuth", function ()
			local ok, code, message = parse_file("server_only"):check_client_usage();
			assert.is_nil(ok);
			assert.equal("bad-key-usage", code);
			assert.matches("clientAuth", message, 1, true);
		end);

		it("returns bad-key-usage for keyUsage without digitalSignature", function ()
			local ok, code, message = parse_file("no_signature_usage"):check_client_usage();
			assert.is_nil(ok);
			assert.equal("bad-key-usage", code);
			assert.matches("digitalSignature", message, 1, true);
		end);
	end);

	describe("#load_trust_anchors()", function ()
		it("counts the certificates of a bundle", function ()
			local anchors = assert(cc.load_trust_anchors(files.ca .. files.alice, "bundle.pem"));
			assert.equal(2, anchors.count);
		end);

		it("skips private key blocks", function ()
			local anchors = assert(cc.load_trust_anchors(read_file("ca.key") .. files.ca, "bundle.pem"));
			assert.equal(1, anchors.count);
		end);

		it("returns bad-trust-anchors for a bundle without certificates", function ()
			local anchors, code, message = cc.load_trust_anchors("no certificates\n", "empty.pem");
			assert.is_nil(anchors);
			assert.equal("bad-trust-anchors", code);
			assert.matches("empty.pem", message, 1, true);
		end);

		it("returns bad-trust-anchors for a garbage block", function ()
			local garbage = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
			local _, code = cc.load_trust_anchors(files.ca .. garbage, "garbage.pem");
			assert.equal("bad-trust-anchors", code);
		end);

		it("raises an error for a missing source name", function ()
			assert.has_error(function () cc.load_trust_anchors(files.ca); end);
		end);

		it("raises an error for a missing bundle", function ()
			assert.has_error(function () cc.load_trust_anchors(nil, "bundle.pem"); end);
		end);
	end);

	describe("#verify()", function ()
		local anchors;

		before_each(function ()
			anchors = assert(cc.load_trust_anchors(files.ca, "ca.pem"));
		end);

		it("returns true for a leaf the CA signed", function ()
			local leaf = parse_file("leaf");
			assert.is_true(anchors:verify(leaf, leaf.not_before + DAY));
		end);

		it("returns untrusted for a leaf of another issuer", function ()
			local cert = parse_file("alice");
			local ok, code, message = anchors:verify(cert, cert.not_before + DAY);
			assert.is_nil(ok);
			assert.equal("untrusted", code);
			assert.matches("not issued by a trusted CA", message, 1, true);
		end);

		it("returns untrusted once the CA has expired", function ()
			local ca = parse_file("ca");
			local leaf = parse_file("leaf");
			local _, code, message = anchors:verify(leaf, ca.not_after + 1);
			assert.equal("untrusted", code);
			assert.matches("validity period", message, 1, true);
		end);

		it("returns bad-key-usage for a serverAuth leaf the CA signed", function ()
			local leaf = parse_file("leaf_server");
			local ok, code = anchors:verify(leaf, leaf.not_before + DAY);
			assert.is_nil(ok);
			assert.equal("bad-key-usage", code);
		end);

		it("raises an error for a certificate that is a string", function ()
			assert.has_error(function () anchors:verify(files.alice, 0); end);
		end);

		it("raises an error for trust anchors in place of a certificate", function ()
			assert.has_error(function () anchors:verify(anchors, 0); end);
		end);

		it("raises an error for a missing time", function ()
			local leaf = parse_file("leaf");
			assert.has_error(function () anchors:verify(leaf); end);
		end);
	end);
end);
