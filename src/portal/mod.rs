//! `consentfs portal serve`: the consent page for the people in the photos (DESIGN.md section
//! 15), a front end like the command line and the control socket. It holds the store's key
//! (it decrypts photos for previews and records decisions) and keeps nothing of its own but
//! sessions in memory; every request asks the catalog again what its session may see and do
//! (`domain::portal`, `domain::consent_page`), so a revoked link, an erased person or a
//! removed guardian ends a session at its next request.
//!
//! Security by construction: a link's token is exchanged for a session cookie (HttpOnly,
//! SameSite=Strict, Secure when the page is reached over https) and dropped from the address
//! bar by a redirect; every form and API write needs the session's CSRF token; failed links are
//! limited per client address (429); pages allow nothing but the site itself (CSP), are never
//! cached, and request heads and bodies are bounded in size and time. No token and no name is
//! logged at info level. TLS is left to a reverse proxy (see the README).

pub mod sessions;
mod words;

use crate::catalog::{consents, persons, Catalog};
use crate::domain::consent_page::{self, Action, Channel};
use crate::domain::{self, portal as invites, Session};
use crate::error::{Error, Result};
use crate::store::Store;
use axum::extract::{DefaultBodyLimit, Extension, Form, Json, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sessions::{Limiter, Sessions};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cookie that names a session.
const COOKIE: &str = "consentfs_session";
/// Request bodies (forms, JSON) are small: a name and a few fields.
pub const MAX_BODY: usize = 16 * 1024;
/// A request's head must arrive within this; a slow client is cut off.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this, whatever it is doing (keep-alive included).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(600);
/// Connections served at once, at most.
const MAX_CONNECTIONS: usize = 256;
/// Written across every preview.
const PREVIEW_MARK: &str = "PREVIEW - VOORBEELD";
/// The long side of a download (audience `subjects`).
const DOWNLOAD_LONG: usize = 2048;
const CSP: &str = "default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How to serve.
pub struct Options {
    pub listen: SocketAddr,
    /// Mark cookies Secure (the page is reached over https, through a proxy).
    pub secure_cookies: bool,
    /// The page's address as people reach it (in the receipts mailed).
    pub base_url: String,
    /// Reverse proxies in front of the page: a request from one of these is from the address
    /// its `X-Forwarded-For` names (for the limit on failed links and the evidence).
    pub trusted_proxies: Vec<IpAddr>,
}

struct App {
    store: Store,
    catalog: Mutex<Catalog>,
    sessions: Mutex<Sessions>,
    limiter: Mutex<Limiter>,
    secure: bool,
    base_url: String,
    trusted_proxies: Vec<IpAddr>,
    /// Receipts to mail, worked off by one thread (see [`mailer`]).
    mail: std::sync::mpsc::SyncSender<domain::mail::Outgoing>,
    env: minijinja::Environment<'static>,
}

/// Receipts waiting to be mailed, at most; past that a receipt is not mailed (it is on the
/// page, and the log says so): a slow or dead mail server never piles up threads or memory.
const MAIL_QUEUE: usize = 64;

/// The thread that mails receipts, one after another (each exchange bounded by the mail
/// module's timeout).
fn mailer() -> Result<std::sync::mpsc::SyncSender<domain::mail::Outgoing>> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<domain::mail::Outgoing>(MAIL_QUEUE);
    std::thread::Builder::new()
        .name("mail".into())
        .spawn(move || {
            for mail in rx {
                mail.send_logged();
            }
        })
        .map_err(|e| Error::io("cannot start the mail thread", e))?;
    Ok(tx)
}

#[derive(Clone, Copy)]
struct Peer(SocketAddr);

/// The longest `X-Forwarded-For` looked at (a proxy adds one address per hop).
const MAX_FORWARDED: usize = 1024;

impl App {
    /// The address a request comes from: the connection's, or behind a trusted proxy the
    /// nearest address in `X-Forwarded-For` that is not one of the trusted proxies (those
    /// further left were written by the client and prove nothing).
    fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let ip = peer.ip();
        if !self.trusted_proxies.contains(&ip) {
            return ip;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.len() <= MAX_FORWARDED)
            .collect();
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .rev()
            .map(|a| a.trim().parse::<IpAddr>())
            .find(|a| {
                a.as_ref()
                    .map_or(true, |a| !self.trusted_proxies.contains(a))
            })
            .and_then(|a| a.ok())
            .unwrap_or(ip)
    }
}

fn templates() -> Result<minijinja::Environment<'static>> {
    crate::pages::environment()
}

/// Serve the consent page on `opts.listen` until the process is stopped. `ready` is called
/// with the address once it listens.
pub fn serve(
    store: Store,
    catalog: Catalog,
    opts: Options,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let app = Arc::new(App {
        store,
        catalog: Mutex::new(catalog),
        sessions: Mutex::new(Sessions::default()),
        limiter: Mutex::new(Limiter::default()),
        secure: opts.secure_cookies,
        base_url: opts.base_url,
        trusted_proxies: opts.trusted_proxies,
        mail: mailer()?,
        env: templates()?,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the consent page's runtime", e))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {}", opts.listen), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        ready(addr);
        let router = routes(app);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("portal: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                log::warn!("portal: {MAX_CONNECTIONS} connections open; one more refused");
                continue;
            };
            let svc = router.clone().layer(Extension(Peer(peer)));
            tokio::spawn(async move {
                let _slot = slot;
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc = hyper_util::service::TowerToHyperService::new(svc);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(64 * 1024)
                    .serve_connection(io, svc);
                match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                    Ok(Err(e)) => log::debug!("portal: connection ended: {e}"),
                    Err(_) => log::debug!("portal: connection held too long; closed"),
                    Ok(Ok(())) => {}
                }
            });
        }
    })
}

fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/style.css", get(style))
        .route("/i/{token}", get(open_link))
        .route("/api/me", get(api_me))
        .route("/api/consent", post(api_consent))
        .route("/consent", post(form_consent))
        .route("/confirm", get(confirm))
        .route("/receipt/{event}", get(receipt))
        .route("/preview/{asset}", get(preview))
        .route("/download/{asset}/{purpose}", get(download))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(app)
}

async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// The words of the request's language, and the language.
fn lang(headers: &HeaderMap) -> (&'static str, serde_json::Value) {
    let l = words::language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    (l, words::words(l))
}

fn render(app: &App, name: &str, ctx: serde_json::Value) -> Response {
    match app
        .env
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)))
    {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(e) => {
            log::error!("portal: template {name}: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A page with one message.
fn message(app: &App, headers: &HeaderMap, status: StatusCode, key: &str, extra: &str) -> Response {
    let (l, t) = lang(headers);
    let text = format!("{} {extra}", t[key].as_str().unwrap_or(key));
    let mut r = render(
        app,
        "message.html",
        serde_json::json!({ "lang": l, "t": t, "message": text.trim() }),
    );
    *r.status_mut() = status;
    r
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(String::from)
        })
        .find(|v| !v.is_empty() && v.len() <= 64)
}

/// Run `f` on the catalog (brought up to the team library's latest change first) off the async
/// threads, as the portal's actor at the current second.
async fn with_catalog<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&mut Session) -> Result<T> + Send + 'static,
) -> Result<T> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut cat = app
            .catalog
            .lock()
            .map_err(|_| Error::invalid("the catalog's lock was poisoned by an earlier failure"))?;
        cat.sync()?;
        let mut s = Session {
            store: &app.store,
            catalog: &mut cat,
            actor: "portal",
            now: chrono::Utc::now(),
        };
        f(&mut s)
    })
    .await
    .map_err(|e| Error::invalid(format!("a request's worker failed: {e}")))?
}

/// The session of the request and its invitations that are open now (re-checked against the
/// catalog), with their CSRF token; `None` when there is none (the session then ends).
async fn current(
    app: &Arc<App>,
    headers: &HeaderMap,
) -> Result<
    Option<(
        String,
        String,
        Vec<crate::catalog::invitations::Invitation>,
        Vec<String>,
    )>,
> {
    let Some(id) = session_id(headers) else {
        return Ok(None);
    };
    let held = {
        let mut s = app
            .sessions
            .lock()
            .map_err(|_| Error::invalid("sessions poisoned"))?;
        s.get(&id, Instant::now())
            .map(|s| (s.invitations.clone(), s.csrf.clone()))
    };
    let Some((ids, csrf)) = held else {
        return Ok(None);
    };
    let (open, alone) = with_catalog(app, move |s| {
        consent_page::open_invitations(s.catalog.conn(), &ids, s.now)
    })
    .await?;
    if open.is_empty() && alone.is_empty() {
        if let Ok(mut s) = app.sessions.lock() {
            s.end(&id);
        }
        return Ok(None);
    }
    Ok(Some((id, csrf, open, alone)))
}

fn failed(app: &App, headers: &HeaderMap, e: &Error) -> Response {
    log::warn!("portal: a request failed: {e}");
    match e {
        Error::NotFound(_) => message(app, headers, StatusCode::NOT_FOUND, "not_found", ""),
        Error::Invalid(m) => message(app, headers, StatusCode::BAD_REQUEST, "failed", m),
        _ => message(
            app,
            headers,
            StatusCode::SERVICE_UNAVAILABLE,
            "failed",
            "the service cannot reach its records right now; try again later",
        ),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("templates/style.css"),
    )
        .into_response()
}

async fn not_found(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    message(&app, &headers, StatusCode::NOT_FOUND, "not_found", "")
}

/// `GET /i/TOKEN`: a link from an invitation becomes a session cookie, and the token leaves the
/// address bar.
async fn open_link(
    State(app): State<Arc<App>>,
    Extension(Peer(peer)): Extension<Peer>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ip: IpAddr = app.client(peer, &headers);
    let allowed = app
        .limiter
        .lock()
        .map(|mut l| l.allows(ip, Instant::now()))
        .unwrap_or(false);
    if !allowed {
        return message(
            &app,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many",
            "",
        );
    }
    let found = with_catalog(&app, move |s| {
        invites::opened(s.catalog.conn(), &token, s.now)
    })
    .await;
    let inv = match found {
        Ok(Some(inv)) => inv,
        Ok(None) => {
            if let Ok(mut l) = app.limiter.lock() {
                l.failed(ip, Instant::now());
            }
            log::info!("portal: a link that opens nothing was tried");
            return message(&app, &headers, StatusCode::NOT_FOUND, "invalid_link", "");
        }
        Err(e) => return failed(&app, &headers, &e),
    };
    let sid = match app.sessions.lock() {
        Ok(mut s) => s.open(session_id(&headers).as_deref(), inv.id, Instant::now()),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    log::info!("portal: invitation {} opened", inv.id);
    let secure = if app.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        sessions::MAX_AGE.as_secs()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// A consent's state in words, with its date.
fn said(t: &serde_json::Value, c: &serde_json::Value) -> String {
    let state = c["state"].as_str().unwrap_or("never_asked");
    let day = |k: &str| {
        c[k].as_str()
            .map(|d| d.get(..10).unwrap_or(d).to_string())
            .unwrap_or_default()
    };
    let w = |k: &str| t[k].as_str().unwrap_or(k).to_string();
    match state {
        "valid" if c["until"].is_string() => format!("{} {}", w("valid_until"), day("until")),
        "valid" => w("valid"),
        "expired" | "withdrawn" | "refused" | "objected" => format!("{} {}", w(state), day("at")),
        "upcoming" => format!("{} {}", w("upcoming"), day("from")),
        other => w(other),
    }
}

/// `GET /`: the page.
async fn page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (id, csrf, open, alone) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return message(&app, &headers, StatusCode::UNAUTHORIZED, "no_session", ""),
        Err(e) => return failed(&app, &headers, &e),
    };
    let _ = id;
    let me = with_catalog(&app, move |s| {
        consent_page::me(s.catalog.conn(), &open, alone, s.now)
    })
    .await;
    let me = match me {
        Ok(m) => m,
        Err(e) => return failed(&app, &headers, &e),
    };
    let (l, t) = lang(&headers);
    let mut me = serde_json::to_value(&me).unwrap_or_default();
    if let Some(persons) = me["persons"].as_array_mut() {
        for p in persons {
            if let Some(cs) = p["consents"].as_array_mut() {
                for c in cs {
                    let text = said(&t, c);
                    c["said"] = serde_json::json!(text);
                }
            }
        }
    }
    render(
        &app,
        "page.html",
        serde_json::json!({ "lang": l, "t": t, "me": me, "csrf": csrf }),
    )
}

/// `GET /api/me`: what the page shows, as JSON.
async fn api_me(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let (_, csrf, open, alone) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return api_error(StatusCode::UNAUTHORIZED, "no session: open your link again"),
        Err(e) => return api_failed(&e),
    };
    let me = with_catalog(&app, move |s| {
        consent_page::me(s.catalog.conn(), &open, alone, s.now)
    })
    .await;
    let me = match me {
        Ok(m) => m,
        Err(e) => return api_failed(&e),
    };
    let persons: Vec<serde_json::Value> = me
        .persons
        .iter()
        .map(|p| {
            let photos: Vec<serde_json::Value> = p
                .photos
                .iter()
                .map(|ph| {
                    let mut v = serde_json::json!({ "id": ph.id, "preview": format!("/preview/{}", ph.id) });
                    if !ph.downloads.is_empty() {
                        v["download"] = serde_json::json!(ph
                            .downloads
                            .iter()
                            .map(|d| format!("/download/{}/{d}", ph.id))
                            .collect::<Vec<_>>());
                    }
                    v
                })
                .collect();
            serde_json::json!({
                "id": p.id,
                "name": p.name,
                "as_guardian": p.as_guardian,
                "photos": photos,
                "consents": p.consents,
            })
        })
        .collect();
    Json(serde_json::json!({
        "csrf": csrf,
        "decider": me.decider,
        "persons": persons,
        "decide_alone": me.decide_alone,
    }))
    .into_response()
}

fn api_error(status: StatusCode, msg: &str) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

fn api_failed(e: &Error) -> Response {
    log::warn!("portal: an API request failed: {e}");
    match e {
        Error::NotFound(m) => api_error(StatusCode::NOT_FOUND, m),
        Error::Invalid(m) => api_error(StatusCode::BAD_REQUEST, m),
        _ => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the records cannot be reached right now",
        ),
    }
}

/// A decision as the API and the forms send it.
#[derive(serde::Deserialize)]
struct Decision {
    person: i64,
    purpose: String,
    action: Action,
    signed_name: Option<String>,
    text_sha256: Option<String>,
    /// Forms only: the CSRF token (the API sends it as a header).
    csrf: Option<String>,
    /// Forms only: the ticked box.
    agree: Option<String>,
}

fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Record `d` for the session; the event's id.
async fn record(
    app: &Arc<App>,
    open: Vec<crate::catalog::invitations::Invitation>,
    d: Decision,
    client: IpAddr,
    ua: String,
) -> Result<i64> {
    let base = app.base_url.clone();
    let outbox = app.mail.clone();
    with_catalog(app, move |s| {
        let ip = client.to_string();
        let event = consent_page::decide(
            s,
            &open,
            d.person,
            &d.purpose,
            d.action,
            d.signed_name.as_deref(),
            d.text_sha256.as_deref(),
            Channel {
                ip: &ip,
                user_agent: &ua,
            },
        )?;
        // the decider gets the receipt by mail too, where mail is configured: composed here,
        // sent off the request's path (a slow mail server does not hold the answer up)
        if let Some(inv) = open.iter().find(|i| i.person == d.person) {
            let words = match d.action {
                Action::Give => "toestemming gegeven / consent given",
                Action::Refuse => "toestemming geweigerd / consent refused",
                Action::Withdraw => "toestemming ingetrokken / consent withdrawn",
            };
            let about = persons::get(s.catalog.conn(), d.person)?
                .map(|p| p.label())
                .unwrap_or_default();
            let what = format!(
                "{words}\ndoel / purpose: {}\nvoor / for: {about}\nop / at: {}",
                d.purpose,
                crate::when::show(s.now)
            );
            match domain::mail::receipt_mail(s.catalog.conn(), inv.decider, event, &what, &base) {
                Ok(Some(mail)) => {
                    if outbox.try_send(mail).is_err() {
                        log::warn!(
                            "receipt #{event} not mailed: {MAIL_QUEUE} receipts are waiting for the mail server"
                        );
                    }
                }
                Ok(None) => {}
                Err(e) => log::warn!("receipt #{event} not mailed: {e}"),
            }
        }
        Ok(event)
    })
    .await
}

/// `POST /api/consent` (JSON, `X-CSRF-Token`).
async fn api_consent(
    State(app): State<Arc<App>>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    body: Result<Json<Decision>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let (_, csrf, open, _) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return api_error(StatusCode::UNAUTHORIZED, "no session: open your link again"),
        Err(e) => return api_failed(&e),
    };
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if sent != Some(csrf.as_str()) {
        return api_error(StatusCode::FORBIDDEN, "missing or wrong X-CSRF-Token");
    }
    let Json(d) = match body {
        Ok(b) => b,
        Err(e) => return api_error(e.status(), &e.body_text()),
    };
    let ua = user_agent(&headers);
    let client = app.client(peer, &headers);
    match record(&app, open, d, client, ua).await {
        Ok(event) => {
            Json(serde_json::json!({ "event": event, "receipt": format!("/receipt/{event}") }))
                .into_response()
        }
        Err(e) => api_failed(&e),
    }
}

/// `POST /consent` (the page's forms).
async fn form_consent(
    State(app): State<Arc<App>>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    body: Result<Form<Decision>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, csrf, open, _) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return message(&app, &headers, StatusCode::UNAUTHORIZED, "no_session", ""),
        Err(e) => return failed(&app, &headers, &e),
    };
    let Ok(Form(d)) = body else {
        return message(&app, &headers, StatusCode::BAD_REQUEST, "failed", "");
    };
    if d.csrf.as_deref() != Some(csrf.as_str()) {
        return message(&app, &headers, StatusCode::FORBIDDEN, "forbidden", "");
    }
    if d.action == Action::Give && d.agree.as_deref() != Some("yes") {
        return message(&app, &headers, StatusCode::BAD_REQUEST, "failed", "");
    }
    let ua = user_agent(&headers);
    let client = app.client(peer, &headers);
    match record(&app, open, d, client, ua).await {
        Ok(event) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, format!("/receipt/{event}"))],
        )
            .into_response(),
        Err(e) => failed(&app, &headers, &e),
    }
}

#[derive(serde::Deserialize)]
struct Ask {
    person: i64,
    purpose: String,
    action: Action,
}

/// `GET /confirm`: "do you really want to withdraw / refuse?", one button.
async fn confirm(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(ask): Query<Ask>,
) -> Response {
    let (_, csrf, open, _) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return message(&app, &headers, StatusCode::UNAUTHORIZED, "no_session", ""),
        Err(e) => return failed(&app, &headers, &e),
    };
    if ask.action == Action::Give || !open.iter().any(|i| i.person == ask.person) {
        return message(&app, &headers, StatusCode::NOT_FOUND, "not_found", "");
    }
    let (l, t) = lang(&headers);
    let (q, yes, action) = match ask.action {
        Action::Withdraw => ("confirm_withdraw", "yes_withdraw", "withdraw"),
        _ => ("confirm_refuse", "yes_refuse", "refuse"),
    };
    let question = format!(
        "{} \u{201c}{}\u{201d}? {}",
        t[q].as_str().unwrap_or(q),
        ask.purpose,
        t["consequence"].as_str().unwrap_or("")
    );
    let yes = t[yes].clone();
    render(
        &app,
        "confirm.html",
        serde_json::json!({ "lang": l, "t": t, "csrf": csrf, "person": ask.person,
            "purpose": ask.purpose, "action": action, "question": question, "yes": yes }),
    )
}

/// `GET /receipt/EVENT` (a printable page) and `/receipt/EVENT.json` (the W3C DPV receipt).
async fn receipt(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(event): Path<String>,
) -> Response {
    let (_, _, open, _) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return message(&app, &headers, StatusCode::UNAUTHORIZED, "no_session", ""),
        Err(e) => return failed(&app, &headers, &e),
    };
    let (json, id) = match event.strip_suffix(".json") {
        Some(n) => (true, n.parse::<i64>().ok()),
        None => (false, event.parse::<i64>().ok()),
    };
    let Some(id) = id else {
        return message(&app, &headers, StatusCode::NOT_FOUND, "not_found", "");
    };
    let found = with_catalog(&app, move |s| {
        let conn = s.catalog.conn();
        for inv in &open {
            if let Some(e) = consents::list(conn, Some(inv.person))?
                .into_iter()
                .find(|e| e.id == id)
            {
                let r = domain::receipt::receipt(conn, id)?;
                let label = |p| -> Result<String> {
                    Ok(persons::get(conn, p)?
                        .map(|p| p.label())
                        .unwrap_or_default())
                };
                return Ok(Some((e.clone(), r, label(e.person)?, label(e.given_by)?)));
            }
        }
        Ok(None)
    })
    .await;
    let (e, r, person, by) = match found {
        Ok(Some(x)) => x,
        Ok(None) => return message(&app, &headers, StatusCode::NOT_FOUND, "not_found", ""),
        Err(err) => return failed(&app, &headers, &err),
    };
    if json {
        return Json(r).into_response();
    }
    let (l, t) = lang(&headers);
    let decision = match e.kind {
        crate::policy::EventKind::Grant => t["given"].clone(),
        crate::policy::EventKind::Withdraw => t["withdrawn_now"].clone(),
        _ => t["refused_now"].clone(),
    };
    render(
        &app,
        "receipt.html",
        serde_json::json!({ "lang": l, "t": t, "event": id, "decision": decision,
            "person": person, "by": by, "purposes": e.purposes.join(", "),
            "at": crate::when::show(e.starts), "reference": format!("#{id}") }),
    )
}

/// `GET /preview/ASSET`: a photo of a person of the session, small and watermarked.
async fn preview(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(asset): Path<i64>,
) -> Response {
    let (sid, _, open, _) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(e) => return failed(&app, &headers, &e),
    };
    let first = app
        .sessions
        .lock()
        .ok()
        .and_then(|mut s| {
            s.get(&sid, Instant::now())
                .map(|s| s.previewed.insert(asset))
        })
        .unwrap_or(true);
    let made = with_catalog(&app, move |s| {
        let Some(inv) = consent_page::may_see(s.catalog.conn(), &open, asset)?.cloned() else {
            return Ok(None);
        };
        if first {
            consent_page::record_preview(s, &inv, asset)?;
        }
        let (bytes, _) = consent_page::read_photo(s, asset)?;
        crate::rendition::render(&bytes, crate::rendition::PREVIEW_LONG, Some(PREVIEW_MARK))
            .map(Some)
    })
    .await;
    match made {
        Ok(Some(jpeg)) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            log::warn!("portal: no preview of asset {asset}: {e}");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// `GET /download/ASSET/PURPOSE`: a photo of a purpose whose audience is the persons on it,
/// for one of them or their guardian, while every person on it consents; audited.
async fn download(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((asset, purpose)): Path<(i64, String)>,
) -> Response {
    let (_, _, open, _) = match current(&app, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return message(&app, &headers, StatusCode::UNAUTHORIZED, "no_session", ""),
        Err(e) => return failed(&app, &headers, &e),
    };
    let made = with_catalog(&app, move |s| {
        let inv =
            consent_page::may_download(s.catalog.conn(), &open, asset, &purpose, s.now)?.cloned();
        let Some(inv) = inv else { return Ok(None) };
        let (bytes, _) = consent_page::read_photo(s, asset)?;
        let jpeg = crate::rendition::render(&bytes, DOWNLOAD_LONG, None)?;
        consent_page::record_download(s, &inv, asset, &purpose)?;
        Ok(Some(jpeg))
    })
    .await;
    match made {
        Ok(Some(jpeg)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"photo-{asset}.jpg\""),
                ),
            ],
            jpeg,
        )
            .into_response(),
        Ok(None) => message(&app, &headers, StatusCode::NOT_FOUND, "not_found", ""),
        Err(e) => failed(&app, &headers, &e),
    }
}
