//! Nextcloud's own OCS API (v2), the part a login server needs, answering
//! as a real Nextcloud 24.0.5 did when recorded on loopback. Base URL:
//! `http://ADDR` (the API listener's host and port).
//!
//! Order of the checks, as in Nextcloud (`ocs/v2.php` logs in before it
//! routes, the AppFramework middlewares then check login, admin rights and
//! CSRF in that order):
//! 1. basic-auth credentials present: first the brute-force throttle's delay
//!    for the client address, when switched on (see `throttle`); wrong
//!    credentials then get 401 with a fixed XML body, whatever `format`
//!    asks for, and are recorded by the throttle;
//! 2. a path not emulated: 404;
//! 3. no credentials: 401 "Current user is not logged in";
//! 4. group details by a user who is neither admin nor subadmin: 403;
//! 5. no `OCS-APIRequest: true` header: 412 `{"message":"CSRF check failed"}`;
//! 6. the endpoint itself.
//!
//! Recorded from a real Nextcloud: the successful answers, the 401 XML, the
//! 412, users/{id} of someone else (404, statuscode 998) and the 403 of
//! group details. The rest (no credentials, unknown user or group, the
//! `totalitems`/`itemsperpage` meta fields, XML without `format=json`)
//! follows Nextcloud 24's source and has not been compared byte for byte.
//!
//! With `--nextcloud-version 32|34`, as real 32.0.2 and 34.0.1 answered
//! (`NEXTCLOUD-API.md`, "Nextcloud 32 and 34"): the 401 in the asked
//! format with `WWW-Authenticate`; a blocked address gets 429 (see
//! `throttle`); a disabled account's right password 401 "Unauthorised" and
//! a two-factor account's any password 401 "Current user is not logged in"
//! (no `WWW-Authenticate`), neither counted; `users/{id}/groups/details`
//! with display names; `groups/details` (403 to subadmins); `limit` and
//! `offset` on a group's members (`[]` past the end); `users/disabled` (34
//! only); `enabled` in user records; `status.php`. Behind a trusted proxy
//! (`--trusted-proxy`) the client address is the `X-Forwarded-For` one.
//! Not emulated: the XML's indentation and `<?xml …?>` line.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::faults;
use crate::state::App;
use crate::stats::{Event, Req};
use crate::users::{Directory, Login, User};

/// The answer to a failed basic-auth login, byte for byte as recorded:
/// Nextcloud's `ocs/v2.php` sends it before looking at `format`.
pub const UNAUTHORISED_XML: &str = "<ocs><meta><status>failure</status><statuscode>997</statuscode><message>Unauthorised</message></meta><data/></ocs>";

/// OCS statuscode "not found" (also used by Nextcloud for "not allowed to see").
const NOT_FOUND: u16 = 998;
/// OCS statuscode "unauthorised".
const UNAUTHORISED: u16 = 997;

/// The OCS routes.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/ocs/v2.php/cloud/user", get(current_user))
        .route("/ocs/v2.php/cloud/capabilities", get(capabilities))
        .route("/ocs/v2.php/cloud/users/disabled", get(disabled_users))
        .route("/ocs/v2.php/cloud/users/{id}", get(user))
        .route("/ocs/v2.php/cloud/users/{id}/groups", get(user_groups))
        .route(
            "/ocs/v2.php/cloud/users/{id}/groups/details",
            get(user_group_details),
        )
        .route("/ocs/v2.php/cloud/groups/details", get(group_details))
        .route("/status.php", get(status))
        .route(
            "/ocs/v2.php/cloud/groups/{group}/users/details",
            get(group_members),
        )
        .route("/ocs", any(unknown))
        .route("/ocs/", any(unknown))
        .route("/ocs/{*rest}", any(unknown))
}

/// Answer format: `?format=json` or `Accept: application/json`, else XML
/// (Nextcloud's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

impl Format {
    fn of(uri: &Uri, headers: &HeaderMap) -> Format {
        let json = uri.query().is_some_and(|q| {
            form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "format" && v == "json")
        }) || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json"));
        if json {
            Format::Json
        } else {
            Format::Xml
        }
    }
}

/// An OCS envelope. `statuscode` is Nextcloud's: 200 for success, else
/// 997/998 or the HTTP status; `data` of a failure is `[]` (an empty PHP
/// array).
fn envelope(
    format: Format,
    status: StatusCode,
    statuscode: u16,
    message: &str,
    data: Value,
) -> Response {
    let meta = [
        (
            "status",
            json!(if status.is_success() { "ok" } else { "failure" }),
        ),
        ("statuscode", json!(statuscode)),
        ("message", json!(message)),
        ("totalitems", json!("")),
        ("itemsperpage", json!("")),
    ];
    match format {
        Format::Json => {
            let meta: Map<String, Value> =
                meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            let body = json!({"ocs": {"meta": meta, "data": data}});
            (
                status,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body.to_string(),
            )
                .into_response()
        }
        Format::Xml => {
            // Written element by element: meta first and in Nextcloud's
            // order (a serde_json map would sort the keys).
            let mut out = String::from("<ocs><meta>");
            for (k, v) in &meta {
                xml(&mut out, k, v);
            }
            out.push_str("</meta>");
            xml(&mut out, "data", &data);
            out.push_str("</ocs>");
            (status, [(header::CONTENT_TYPE, "application/xml")], out).into_response()
        }
    }
}

fn ok(format: Format, data: Value) -> Response {
    envelope(format, StatusCode::OK, 200, "OK", data)
}

fn fail(format: Format, status: StatusCode, statuscode: u16, message: &str) -> Response {
    envelope(format, status, statuscode, message, json!([]))
}

/// Writes `v` as element `name` the way Nextcloud's OCS renderer does:
/// list items become `<element>`, booleans `1` or nothing, empty lists,
/// objects and null an empty element. Compact, as the recorded 401 is.
fn xml(out: &mut String, name: &str, v: &Value) {
    let children: Vec<(&str, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        Value::Array(a) => a.iter().map(|v| ("element", v)).collect(),
        _ => Vec::new(),
    };
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "1".into(),
        _ => String::new(),
    };
    if children.is_empty() && matches!(v, Value::Object(_) | Value::Array(_) | Value::Null) {
        out.push_str(&format!("<{name}/>"));
        return;
    }
    out.push_str(&format!("<{name}>"));
    for (k, c) in children {
        xml(out, k, c);
    }
    for ch in text.chars() {
        match ch {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out.push_str(&format!("</{name}>"));
}

/// Standard base64 (RFC 4648), padding optional; `None` if malformed.
/// Ten lines here rather than a new dependency of the test server.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    if s.len() % 4 == 1 {
        return None; // 6 bits cannot end a byte sequence
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.extend_from_slice(&(acc >> bits).to_be_bytes()[3..]);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// `Authorization: Basic …` as PHP reads it: (login, password) split at the
/// first `:`; `None` when absent or unreadable (PHP then sets no user).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(encoded.trim())?;
    // Not UTF-8: kept (lossily), so that it fails as a login, as in PHP.
    let text = String::from_utf8_lossy(&decoded);
    let (login, password) = text.split_once(':')?;
    Some((login.to_string(), password.to_string()))
}

/// A request that passed the checks: who asked, in which format.
struct Call {
    format: Format,
    dir: Arc<Directory>,
    me: User,
}

/// The client address as Nextcloud sees it: the peer, or, when the peer is
/// a trusted proxy, the rightmost `X-Forwarded-For` entry that is not one
/// (as `OC\AppFramework\Http\Request::getRemoteAddress`).
fn client_address(app: &App, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let trusted = |ip: &IpAddr| app.trusted_proxies.contains(ip);
    if !trusted(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|ip| !trusted(ip))
        .unwrap_or(peer)
}

/// Which endpoint; decides what Nextcloud checks before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    CurrentUser,
    User,
    UserGroups,
    GroupMembers,
    GroupDetails,
    Unknown,
}

impl Route {
    fn counter(self) -> Req {
        match self {
            Route::CurrentUser => Req::OcsUser,
            Route::User => Req::OcsUsers,
            Route::UserGroups => Req::OcsGroups,
            Route::GroupMembers => Req::OcsGroupMembers,
            Route::GroupDetails | Route::Unknown => Req::OcsOther,
        }
    }
}

fn log(app: &App, uri: &Uri, who: &str, outcome: &str) {
    if !app.quiet {
        // Never the password.
        eprintln!("jsxc-test-backend: ocs {} as {who}: {outcome}", uri.path());
    }
}

/// Steps 1 to 5 of the module comment; `Err` is the answer to send.
async fn enter(
    app: &App,
    route: Route,
    client: IpAddr,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Call, Response> {
    app.stats.request(route.counter());
    if let Some(faulty) = faults::apply(app, uri.path()).await {
        return Err(faulty);
    }
    let client = client_address(app, client, headers);
    let format = Format::of(uri, headers);
    let credentials = basic_credentials(headers);
    // Nextcloud 32/34: a blocked address gets 429 for any credentials,
    // before they are checked; the 429 itself is not recorded.
    if credentials.is_some() && app.throttle.blocked(client) {
        app.stats.event(Event::ThrottleBlocked);
        log(app, uri, "someone", "429 address blocked");
        return Err(fail(
            format,
            StatusCode::TOO_MANY_REQUESTS,
            429,
            "Reached maximum delay",
        ));
    }
    // Every login is throttled, whatever its password, before it is checked.
    let delayed_ms = match &credentials {
        Some(_) => app.throttle.before_login(client, &app.stats).await,
        None => 0,
    };
    let dir = app.directory();
    let me = match credentials {
        Some((login, password)) => match dir.nextcloud_login(&login, &password) {
            Login::Ok(u) => {
                app.throttle.succeeded(client, &login);
                Some(u.clone())
            }
            // Neither is counted by the throttle.
            Login::TwoFactor => {
                log(app, uri, &login, "401 two-factor: password not checked");
                return Err(fail(
                    format,
                    StatusCode::UNAUTHORIZED,
                    UNAUTHORISED,
                    "Current user is not logged in",
                ));
            }
            Login::Disabled if app.nextcloud_version >= 32 => {
                log(app, uri, &login, "401 account disabled");
                return Err(unauthorised_32(format));
            }
            Login::Disabled | Login::Wrong => {
                app.throttle
                    .failed(client, &login, delayed_ms, &app.stats)
                    .await;
                app.stats.event(Event::OcsLoginFailed);
                log(app, uri, &login, "401 login failed");
                if app.nextcloud_version >= 32 {
                    return Err(unauthorised_32(format));
                }
                return Err((
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "application/xml")],
                    UNAUTHORISED_XML,
                )
                    .into_response());
            }
        },
        None => None,
    };
    let who = me.as_ref().map_or("nobody", |u| u.uid.as_str()).to_string();
    if route == Route::Unknown {
        log(app, uri, &who, "404 not emulated");
        return Err(fail(
            format,
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            "Invalid query, please check the syntax. API specifications are here: \
             http://www.freedesktop.org/wiki/Specifications/open-collaboration-services.\n",
        ));
    }
    let Some(me) = me else {
        app.stats.event(Event::OcsNotLoggedIn);
        log(app, uri, &who, "401 not logged in");
        return Err(fail(
            format,
            StatusCode::UNAUTHORIZED,
            UNAUTHORISED,
            "Current user is not logged in",
        ));
    };
    if route == Route::GroupMembers && !me.is_admin() && me.subadmin.is_empty() {
        log(app, uri, &who, "403 not a subadmin");
        return Err(fail(
            format,
            StatusCode::FORBIDDEN,
            403,
            if app.nextcloud_version >= 32 {
                "Logged in account must be at least a sub admin"
            } else {
                "Logged in user must be at least a sub admin"
            },
        ));
    }
    if route == Route::GroupDetails && !me.is_admin() {
        log(app, uri, &who, "403 not an admin");
        return Err(fail(
            format,
            StatusCode::FORBIDDEN,
            403,
            "Logged in account must be an admin, a sub admin or gotten special right to access this setting",
        ));
    }
    let csrf_ok = headers
        .get("ocs-apirequest")
        .is_some_and(|v| v.as_bytes() == b"true");
    if !csrf_ok {
        app.stats.event(Event::OcsCsrf);
        log(app, uri, &who, "412 no OCS-APIRequest header");
        return Err((
            StatusCode::PRECONDITION_FAILED,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            r#"{"message":"CSRF check failed"}"#,
        )
            .into_response());
    }
    log(app, uri, &who, "admitted");
    Ok(Call { format, dir, me })
}

/// Nextcloud 32/34's 401 for a failed login: in the asked format, with
/// `WWW-Authenticate`.
fn unauthorised_32(format: Format) -> Response {
    let mut r = fail(
        format,
        StatusCode::UNAUTHORIZED,
        UNAUTHORISED,
        "Unauthorised",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"Authorisation Required\""),
    );
    r
}

/// What Nextcloud's `getUserData` shows `viewer` of `target`: `None` when
/// the viewer may not see it (neither the user, nor its admin or subadmin).
fn user_data(viewer: &User, target: &User) -> Option<Map<String, Value>> {
    let manages = viewer.manages(target);
    if !manages && viewer.uid != target.uid {
        return None;
    }
    let mut d = Map::new();
    d.insert("id".into(), target.uid.clone().into());
    if manages {
        d.insert("enabled".into(), (!target.disabled).into());
    }
    d.insert("displayname".into(), target.display_name().into());
    d.insert("email".into(), target.login.clone().into());
    d.insert("groups".into(), json!(target.groups));
    d.insert("subadmin".into(), json!(target.subadmin));
    Some(d)
}

/// `GET /ocs/v2.php/cloud/user`: the logged-in user, `display-name` with a
/// dash here only.
async fn current_user(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let call = match enter(&app, Route::CurrentUser, client.ip(), &uri, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let mut d = user_data(&call.me, &call.me).unwrap_or_default();
    if let Some(name) = d.remove("displayname") {
        d.insert("display-name".into(), name);
    }
    ok(call.format, Value::Object(d))
}

/// `GET /ocs/v2.php/cloud/capabilities` (32/34): public, answered during a
/// block too; `bruteforce` tells the caller's address's state. On 24 this
/// path is not emulated.
async fn capabilities(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ip = client_address(&app, client.ip(), &headers);
    if app.nextcloud_version < 32 || basic_credentials(&headers).is_some() {
        return unknown(State(app), ConnectInfo(client), uri, headers).await;
    }
    app.stats.request(Req::OcsOther);
    let format = Format::of(&uri, &headers);
    let (major, version) = match app.nextcloud_version {
        34 => (34, "34.0.1"),
        _ => (32, "32.0.2"),
    };
    ok(
        format,
        json!({
            "version": {"major": major, "minor": 0, "string": version},
            "capabilities": {
                "bruteforce": {
                    "delay": app.throttle.reported_delay_ms(ip),
                    "allow-listed": app.throttle.is_allow_listed(ip),
                },
            },
        }),
    )
}

/// `GET /ocs/v2.php/cloud/users/{id}`.
async fn user(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let call = match enter(&app, Route::User, client.ip(), &uri, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let target = match call.dir.get(&id) {
        Some(t) => t,
        // An e-mail address: an admin finds the account, a subadmin does
        // not (recorded on 32/34: 200 id grace vs 404 998).
        None => match call.dir.by_login(&id) {
            Some(t) if app.nextcloud_version >= 32 && call.me.is_admin() => t,
            Some(_) if app.nextcloud_version >= 32 => {
                return fail(call.format, StatusCode::NOT_FOUND, NOT_FOUND, "")
            }
            _ => {
                return fail(
                    call.format,
                    StatusCode::NOT_FOUND,
                    404,
                    "User does not exist",
                )
            }
        },
    };
    match user_data(&call.me, target) {
        Some(d) => ok(call.format, Value::Object(d)),
        // Recorded: alice asking for bob gets 404 with statuscode 998.
        None => fail(call.format, StatusCode::NOT_FOUND, NOT_FOUND, ""),
    }
}

/// `GET /ocs/v2.php/cloud/users/{id}/groups`.
async fn user_groups(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let call = match enter(&app, Route::UserGroups, client.ip(), &uri, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(target) = call.dir.get(&id) else {
        return fail(call.format, StatusCode::NOT_FOUND, NOT_FOUND, "");
    };
    let me = &call.me;
    let groups: Vec<&String> = if me.uid == target.uid || me.is_admin() {
        target.groups.iter().collect()
    } else if me.manages(target) {
        // A subadmin sees only the groups it administers.
        target
            .groups
            .iter()
            .filter(|g| me.subadmin.contains(g))
            .collect()
    } else if app.nextcloud_version >= 32 {
        // 32/34: an invisible user is an unknown one.
        return fail(call.format, StatusCode::NOT_FOUND, NOT_FOUND, "");
    } else {
        return fail(call.format, StatusCode::UNAUTHORIZED, UNAUTHORISED, "");
    };
    ok(call.format, json!({ "groups": groups }))
}

/// `GET /ocs/v2.php/cloud/groups/{group}/users/details`.
async fn group_members(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(group): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let call = match enter(&app, Route::GroupMembers, client.ip(), &uri, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let me = &call.me;
    // A subadmin of other groups learns nothing, not even that it exists.
    if !call.dir.group_exists(&group) || !(me.is_admin() || me.subadmin.contains(&group)) {
        return fail(
            call.format,
            StatusCode::NOT_FOUND,
            NOT_FOUND,
            "The requested group could not be found",
        );
    }
    let (limit, offset) = paging(&uri);
    let users: Map<String, Value> = call
        .dir
        .members(&group)
        .skip(offset)
        .take(limit)
        .map(|u| {
            let d = user_data(me, u).unwrap_or_else(|| {
                // As Nextcloud: only the id of a member the caller may not see.
                let mut m = Map::new();
                m.insert("id".into(), u.uid.clone().into());
                m
            });
            (u.uid.clone(), Value::Object(d))
        })
        .collect();
    if users.is_empty() {
        // An empty PHP array: a list.
        return ok(call.format, json!({ "users": [] }));
    }
    ok(call.format, json!({ "users": users }))
}

/// `limit` and `offset` of the query (no limit: all; unreadable: as absent).
fn paging(uri: &Uri) -> (usize, usize) {
    let (mut limit, mut offset) = (usize::MAX, 0);
    if let Some(q) = uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            match (k.as_ref(), v.parse::<usize>()) {
                ("limit", Ok(n)) if n > 0 => limit = n,
                ("offset", Ok(n)) => offset = n,
                _ => {}
            }
        }
    }
    (limit, offset)
}

/// `GET /ocs/v2.php/cloud/users/{id}/groups/details` (32/34): the groups
/// `users/{id}/groups` would list, with display names.
async fn user_group_details(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if app.nextcloud_version < 32 {
        return unknown(State(app), ConnectInfo(client), uri, headers).await;
    }
    let call = match enter(&app, Route::UserGroups, client.ip(), &uri, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(target) = call.dir.get(&id) else {
        return fail(call.format, StatusCode::NOT_FOUND, NOT_FOUND, "");
    };
    let me = &call.me;
    if !(me.uid == target.uid || me.manages(target)) {
        return fail(call.format, StatusCode::NOT_FOUND, NOT_FOUND, "");
    }
    let groups: Vec<Value> = target
        .groups
        .iter()
        .filter(|g| me.uid == target.uid || me.is_admin() || me.subadmin.contains(g))
        .map(|g| group_record(&call.dir, g))
        .collect();
    ok(call.format, json!({ "groups": groups }))
}

/// A group as `…/groups/details` list it.
fn group_record(dir: &Directory, id: &str) -> Value {
    let members: Vec<&User> = dir.members(id).collect();
    json!({
        "id": id,
        "displayname": dir.group_name(id),
        "usercount": members.len(),
        "disabled": members.iter().filter(|u| u.disabled).count(),
        "canAdd": true,
        "canRemove": true,
    })
}

/// `GET /ocs/v2.php/cloud/groups/details`: every group with its display
/// name, for admins (32/34 refuse subadmins with 403, in `enter`).
async fn group_details(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let call = match enter(&app, Route::GroupDetails, client.ip(), &uri, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (limit, offset) = paging(&uri);
    let groups: Vec<Value> = call
        .dir
        .groups()
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|g| group_record(&call.dir, g))
        .collect();
    ok(call.format, json!({ "groups": groups }))
}

/// `GET /ocs/v2.php/cloud/users/disabled` (34): the disabled accounts'
/// full records, for admins. On 24 and 32 it is `users/{id}` of a user
/// called "disabled".
async fn disabled_users(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if app.nextcloud_version < 34 {
        return user(
            State(app),
            ConnectInfo(client),
            Path("disabled".to_string()),
            uri,
            headers,
        )
        .await;
    }
    let call = match enter(&app, Route::User, client.ip(), &uri, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !call.me.is_admin() {
        return fail(
            call.format,
            StatusCode::FORBIDDEN,
            403,
            "Logged in account must be an admin",
        );
    }
    let users: Map<String, Value> = call
        .dir
        .all()
        .filter(|u| u.disabled)
        .filter_map(|u| Some((u.uid.clone(), Value::Object(user_data(&call.me, u)?))))
        .collect();
    if users.is_empty() {
        return ok(call.format, json!({ "users": [] }));
    }
    ok(call.format, json!({ "users": users }))
}

/// `GET /status.php` (32/34; public, answered during a block too).
async fn status(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if app.nextcloud_version < 32 {
        return unknown(State(app), ConnectInfo(client), uri, headers).await;
    }
    app.stats.request(Req::OcsOther);
    let (version, string) = version_of(app.nextcloud_version);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({
            "installed": true, "maintenance": false, "needsDbUpgrade": false,
            "version": version, "versionstring": string, "edition": "",
            "productname": "Nextcloud", "extendedSupport": false,
        })
        .to_string(),
    )
        .into_response()
}

/// Full version and version string of the emulated Nextcloud.
fn version_of(v: u32) -> (&'static str, &'static str) {
    match v {
        34 => ("34.0.1.2", "34.0.1"),
        32 => ("32.0.2.2", "32.0.2"),
        _ => ("24.0.5.1", "24.0.5"),
    }
}

/// Any other path under `/ocs`.
async fn unknown(
    State(app): State<Arc<App>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match enter(&app, Route::Unknown, client.ip(), &uri, &headers).await {
        // `enter` answers every unknown path itself.
        Ok(call) => fail(call.format, StatusCode::NOT_FOUND, NOT_FOUND, ""),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("YWxpY2U6cHc=").as_deref(),
            Some(&b"alice:pw"[..])
        );
        assert_eq!(
            base64_decode("YWxpY2U6cHc").as_deref(),
            Some(&b"alice:pw"[..])
        );
        assert_eq!(base64_decode("w6Q6w7Y=").as_deref(), Some("ä:ö".as_bytes()));
        assert_eq!(base64_decode("").as_deref(), Some(&b""[..]));
        assert_eq!(base64_decode("YWxpY2U6c!c="), None);
        assert_eq!(base64_decode("YWxpY"), None);
    }

    #[test]
    fn credentials() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_credentials(&h), None);
        // "bob:p:w d" — the password keeps its colon and space.
        h.insert(header::AUTHORIZATION, "basic Ym9iOnA6dyBk".parse().unwrap());
        assert_eq!(basic_credentials(&h), Some(("bob".into(), "p:w d".into())));
        h.insert(header::AUTHORIZATION, "Basic Ym9i".parse().unwrap()); // "bob", no colon
        assert_eq!(basic_credentials(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer Ym9iOnB3".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }

    async fn body(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn envelopes() {
        let x = body(fail(Format::Xml, StatusCode::NOT_FOUND, NOT_FOUND, "a<b")).await;
        assert_eq!(
            x,
            "<ocs><meta><status>failure</status><statuscode>998</statuscode>\
             <message>a&lt;b</message><totalitems></totalitems><itemsperpage></itemsperpage>\
             </meta><data/></ocs>"
        );
        let j: Value =
            serde_json::from_str(&body(ok(Format::Json, json!({"id": "x"}))).await).unwrap();
        assert_eq!(
            j,
            json!({"ocs": {"meta": {"status": "ok", "statuscode": 200, "message": "OK",
                "totalitems": "", "itemsperpage": ""}, "data": {"id": "x"}}})
        );
    }

    #[test]
    fn xml_rendering() {
        let mut out = String::new();
        xml(
            &mut out,
            "d",
            &json!({"groups": ["a&b", "c"], "enabled": true, "email": null}),
        );
        assert_eq!(
            out,
            "<d><email/><enabled>1</enabled><groups><element>a&amp;b</element>\
             <element>c</element></groups></d>"
        );
    }
}
