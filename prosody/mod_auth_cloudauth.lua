-- mod_auth_cloudauth: Prosody 0.12 and 13 authentication against Nextcloud/JSXC
-- through a long-running cloudauth (`cloudauth --listen generic=ADDR`).
--
-- The "generic" protocol is one line per request, `auth:USER:DOMAIN:PASSWORD`
-- or `isuser:USER:DOMAIN`, answered by `1` or `0` in request order. All
-- requests of a host share one connection: they are pipelined and a FIFO of
-- waiting requests takes the answers in turn. Waiting uses util.async, so the
-- session asking is suspended while Prosody keeps serving everybody else.
--
--   authentication = "cloudauth"
--   cloudauth_socket = "/run/cloudauth/prosody.sock" -- unix socket (default)
--   -- or: cloudauth_host = "127.0.0.1"; cloudauth_port = 23664 -- TCP (IP address)
--   cloudauth_timeout = 10 -- seconds to wait for an answer

local async = require "util.async";
local server = require "net.server";
local new_sasl = require "util.sasl".new;

local host = module.host;
local port = module:get_option_number("cloudauth_port");
local ip = module:get_option_string("cloudauth_host", "127.0.0.1");
local path = module:get_option_string("cloudauth_socket", not port and "/run/cloudauth/prosody.sock" or nil);
local timeout = module:get_option_number("cloudauth_timeout", 10);
local target = path and ("unix:" .. path) or (ip .. ":" .. port);

local conn;         -- the current connection (net.server interface), if any
local buffer = "";  -- received bytes not yet forming a whole line
local pending = {}; -- requests waiting for an answer, oldest first

-- Answer a request (true/false, or nil and an error) and wake its session.
local function finish(req, answer, err)
	if req.finished then return; end
	req.finished, req.answer, req.err = true, answer, err;
	req.timer:stop();
	req.wake();
end

-- Forget the connection and fail every request still waiting on it. The next
-- request connects afresh.
local function drop(reason)
	local c, reqs = conn, pending;
	conn, buffer, pending = nil, "", {};
	if c then c:close(); end
	for _, req in ipairs(reqs) do
		finish(req, nil, reason);
	end
end

local listeners = {};

function listeners.onincoming(c, data)
	if c ~= conn then return; end
	buffer = buffer .. data;
	while c == conn do -- a woken session may make requests (or drop) meanwhile
		local line, rest = buffer:match("^([^\n]*)\n(.*)$");
		if not line then break; end
		buffer = rest;
		local req = table.remove(pending, 1);
		if not req or (line ~= "1" and line ~= "0") then
			module:log("error", "Unexpected answer from cloudauth at %s; dropping the connection", target);
			return drop("protocol error");
		end
		finish(req, line == "1");
	end
	if c == conn and #buffer > 64 then
		module:log("error", "Overlong answer from cloudauth at %s; dropping the connection", target);
		drop("protocol error");
	end
end

function listeners.ondisconnect(c, err)
	if c ~= conn then return; end -- an old connection, or one we dropped
	module:log(#pending > 0 and "warn" or "debug", "Connection to cloudauth at %s lost: %s",
		target, err or "closed");
	drop(err or "connection closed");
end

-- An idle connection is fine: keep it instead of letting net.server close it.
function listeners.onreadtimeout()
	return true;
end

-- Open a non-blocking connection; writes are buffered until it is up.
local function connect()
	if not path then
		return server.addclient(ip, port, listeners);
	end
	local ok_unix, unix = pcall(require, "socket.unix");
	if not ok_unix then return nil, "no unix socket support in LuaSocket"; end
	if type(unix) == "function" then unix = { stream = unix }; end -- older LuaSocket
	local sock, err = unix.stream();
	if not sock then return nil, err; end
	sock:settimeout(0);
	local ok;
	ok, err = sock:connect(path);
	if not ok and err ~= "timeout" then
		sock:close();
		return nil, err;
	end
	return server.wrapclient(sock, path, 0, listeners);
end

-- Send one request line and wait (without blocking Prosody) for its answer.
-- Returns true/false, or nil and an error when there is no answer.
local function request(line)
	if not async.ready() then
		return nil, "cloudauth needs an async context";
	end
	if not conn then
		local c, err = connect();
		if not c then
			module:log("warn", "Cannot connect to cloudauth at %s: %s", target, err);
			return nil, "cloudauth unreachable";
		end
		conn, buffer = c, "";
	end
	local wait, wake = async.waiter();
	local req = { wake = wake };
	req.timer = module:add_timer(timeout, function ()
		if req.finished then return; end
		-- Answers come in order, so everything behind this one is stuck too.
		module:log("warn", "No answer from cloudauth at %s within %g s; dropping the connection",
			target, timeout);
		drop("timeout");
	end);
	table.insert(pending, req);
	conn:write(line .. "\n");
	wait();
	return req.answer, req.err;
end

-- ':' separates the fields and a newline ends the request.
local function bad_user(username)
	return type(username) ~= "string" or username == "" or username:find("[:\r\n]") ~= nil;
end

local provider = {};

function provider.test_password(username, password)
	if bad_user(username) or type(password) ~= "string" or password:find("[\r\n]") then
		module:log("debug", "Refusing malformed credentials without asking cloudauth");
		return nil, "Auth failed. Invalid username or password.";
	end
	local ok, err = request(("auth:%s:%s:%s"):format(username, host, password));
	if err then
		module:log("warn", "auth %s@%s: no answer (%s), refusing", username, host, err);
		return nil, "Auth failed. Authentication service unavailable.";
	end
	module:log("debug", "auth %s@%s: %s", username, host, ok and "yes" or "no");
	if ok then return true; end
	return nil, "Auth failed. Invalid username or password.";
end

function provider.user_exists(username)
	if bad_user(username) then return nil, "Invalid username"; end
	local ok, err = request(("isuser:%s:%s"):format(username, host));
	if err then
		module:log("warn", "isuser %s@%s: no answer (%s)", username, host, err);
		return nil, err;
	end
	if ok then return true; end
	return nil, "User does not exist";
end

-- Accounts live in Nextcloud.
function provider.set_password() return nil, "not supported"; end
function provider.create_user() return nil, "not supported"; end
function provider.delete_user() return nil, "not supported"; end
function provider.users() return function() return nil; end; end

function provider.get_sasl_handler()
	return new_sasl(host, {
		plain_test = function (_, username, password)
			return provider.test_password(username, password) == true, true;
		end;
	});
end

function module.unload()
	drop("module unloaded");
end

module:log("debug", "Using cloudauth at %s (timeout %g s)", target, timeout);
module:provides("auth", provider);
