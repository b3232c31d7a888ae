-- mod_auth_cloudauth: Prosody 0.12 and 13 authentication against Nextcloud/JSXC
-- through a long-running cloudauth (`cloudauth --listen generic=ADDR`).
--
-- The "generic" protocol is one line per request, `auth:USER:DOMAIN:PASSWORD`
-- or `isuser:USER:DOMAIN`, answered by `1` or `0` in request order. Because
-- answers come in order, a token login pipelined behind password logins
-- would wait for the cloud too. So a host keeps a small pool of connections:
-- a request takes an idle connection, opens another one while fewer than
-- `cloudauth_connections` are open, and only then is pipelined on the least
-- busy one (a FIFO per connection takes the answers in turn). Waiting uses
-- util.async, so the session asking is suspended while Prosody keeps serving
-- everybody else.
--
--   authentication = "cloudauth"
--   cloudauth_socket = "/run/cloudauth/prosody.sock" -- unix socket (default)
--   -- or: cloudauth_host = "127.0.0.1"; cloudauth_port = 23664 -- TCP (IP address)
--   cloudauth_timeout = 12 -- seconds to wait for an answer
--   cloudauth_connections = 4 -- connections to cloudauth at most

local async = require "util.async";
local server = require "net.server";
local new_sasl = require "util.sasl".new;

local host = module.host;
local port = module:get_option_number("cloudauth_port");
local ip = module:get_option_string("cloudauth_host", "127.0.0.1");
local path = module:get_option_string("cloudauth_socket", not port and "/run/cloudauth/prosody.sock" or nil);
-- Above cloudauth's own deadline for a decision (its --timeout total, 10 s
-- by default, and 1 s): on backend trouble cloudauth answers "cannot tell"
-- itself, and this timeout only catches a hung cloudauth.
local timeout = module:get_option_number("cloudauth_timeout", 12);
local max_connections = math.max(1, math.floor(module:get_option_number("cloudauth_connections", 4)));
local target = path and ("unix:" .. path) or (ip .. ":" .. port);

-- The open connections, keyed by their net.server connection. Each holds
-- `buffer` (received bytes not yet forming a whole line) and `pending`
-- (requests waiting for an answer on it, oldest first).
local pool = {};

-- Answer a request (true/false, or nil and an error) and wake its session.
local function finish(req, answer, err)
	if req.finished then return; end
	req.finished, req.answer, req.err = true, answer, err;
	req.timer:stop();
	req.wake();
end

-- Forget one connection and fail every request still waiting on it. Other
-- connections are untouched; the next request may connect afresh.
local function drop(link, reason)
	if pool[link.conn] ~= link then return; end
	pool[link.conn] = nil;
	link.conn:close();
	local reqs = link.pending;
	link.pending = {};
	for _, req in ipairs(reqs) do
		finish(req, nil, reason);
	end
end

local function drop_all(reason)
	-- Listed first: a woken session may open connections while we go.
	local links = {};
	for _, link in pairs(pool) do links[#links + 1] = link; end
	for _, link in ipairs(links) do drop(link, reason); end
end

local listeners = {};

function listeners.onincoming(c, data)
	local link = pool[c];
	if not link then return; end -- a connection we dropped
	link.buffer = link.buffer .. data;
	while pool[c] == link do -- a woken session may make requests (or drop) meanwhile
		local line, rest = link.buffer:match("^([^\n]*)\n(.*)$");
		if not line then break; end
		link.buffer = rest;
		local req = table.remove(link.pending, 1);
		if not req or (line ~= "1" and line ~= "0") then
			module:log("error", "Unexpected answer from cloudauth at %s; dropping the connection", target);
			return drop(link, "protocol error");
		end
		finish(req, line == "1");
	end
	if pool[c] == link and #link.buffer > 64 then
		module:log("error", "Overlong answer from cloudauth at %s; dropping the connection", target);
		drop(link, "protocol error");
	end
end

function listeners.ondisconnect(c, err)
	local link = pool[c];
	if not link then return; end -- one we dropped
	module:log(#link.pending > 0 and "warn" or "debug", "Connection to cloudauth at %s lost: %s",
		target, err or "closed");
	drop(link, err or "connection closed");
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

-- The connection for the next request: an idle one, else a new one while the
-- pool has room, else the one with the fewest requests waiting.
local function pick()
	local best, open = nil, 0;
	for _, link in pairs(pool) do
		open = open + 1;
		if not best or #link.pending < #best.pending then best = link; end
	end
	if best and #best.pending == 0 then return best; end
	if open < max_connections then
		local c, err = connect();
		if c then
			local link = { conn = c, buffer = "", pending = {} };
			pool[c] = link;
			return link;
		end
		module:log("warn", "Cannot connect to cloudauth at %s: %s", target, err);
	end
	if best then return best; end
	return nil, "cloudauth unreachable";
end

-- Send one request line and wait (without blocking Prosody) for its answer.
-- Returns true/false, or nil and an error when there is no answer.
local function request(line)
	if not async.ready() then
		return nil, "cloudauth needs an async context";
	end
	local link, err = pick();
	if not link then return nil, err; end
	local wait, wake = async.waiter();
	local req = { wake = wake };
	req.timer = module:add_timer(timeout, function ()
		if req.finished then return; end
		-- Answers come in order, so everything behind this one on its
		-- connection is stuck too.
		module:log("warn", "No answer from cloudauth at %s within %g s; dropping the connection",
			target, timeout);
		drop(link, "timeout");
	end);
	table.insert(link.pending, req);
	link.conn:write(line .. "\n");
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
	drop_all("module unloaded");
end

module:log("debug", "Using cloudauth at %s (timeout %g s, at most %d connections)", target, timeout,
	max_connections);
module:provides("auth", provider);
