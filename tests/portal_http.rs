//! The consent page over HTTP (`consentfs portal serve`), as a parent's browser and a script
//! use it, and as an attacker tries it: links, sessions, CSRF, previews, decisions that the
//! catalog (and so every mount and export) follows at once, receipts, downloads for the
//! parents of the children on a photo, and the bounds.

mod common;

use common::TestStore;
use mailparse::MailHeaderMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `consentfs portal serve` on a free loopback port.
struct Portal {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An answer: status, headers we look at, body.
struct Answer {
    status: u16,
    cookie: Option<String>,
    location: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Portal {
    fn start(t: &TestStore) -> Portal {
        Portal::start_with(t, &[])
    }

    /// [`Portal::start`] with more options for `portal serve`.
    fn start_with(t: &TestStore, extra: &[&str]) -> Portal {
        let mut child = t
            .cmd()
            .args(["portal", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Portal {
            child,
            base: addr,
            agent,
        }
    }

    fn answer(mut r: ureq::http::Response<ureq::Body>) -> Answer {
        let headers: Vec<(String, String)> = r
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        Answer {
            status: r.status().as_u16(),
            cookie: get("set-cookie"),
            location: get("location"),
            body: r
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_vec()
                .unwrap(),
            headers,
        }
    }

    fn get(&self, path: &str, session: Option<&str>, lang: Option<&str>) -> Answer {
        let mut r = self.agent.get(format!("{}{path}", self.base));
        if let Some(s) = session {
            r = r.header("Cookie", format!("consentfs_session={s}"));
        }
        if let Some(l) = lang {
            r = r.header("Accept-Language", l);
        }
        Self::answer(r.call().unwrap())
    }

    /// GET with these request headers.
    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut r = self.agent.get(format!("{}{path}", self.base));
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        Self::answer(r.call().unwrap())
    }

    fn post(
        &self,
        path: &str,
        session: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let mut r = self.agent.post(format!("{}{path}", self.base));
        if let Some(s) = session {
            r = r.header("Cookie", format!("consentfs_session={s}"));
        }
        for (n, v) in headers {
            r = r.header(*n, *v);
        }
        Self::answer(r.send(body).unwrap())
    }

    /// Open an invitation link; the session id its cookie carries.
    fn open(&self, url: &str) -> String {
        let token = url.rsplit('/').next().unwrap();
        let a = self.get(&format!("/i/{token}"), None, None);
        assert_eq!(a.status, 303, "{}", a.text());
        assert_eq!(
            a.location.as_deref(),
            Some("/"),
            "the token leaves the address bar"
        );
        let cookie = a.cookie.expect("a session cookie");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attr), "{cookie}");
        }
        cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("consentfs_session=")
            .unwrap()
            .to_string()
    }

    fn consent(
        &self,
        session: &str,
        csrf: &str,
        person: i64,
        purpose: &str,
        action: &str,
        name: Option<&str>,
    ) -> Answer {
        let mut body =
            serde_json::json!({ "person": person, "purpose": purpose, "action": action });
        if let Some(n) = name {
            body["signed_name"] = serde_json::json!(n);
        }
        self.post(
            "/api/consent",
            Some(session),
            &[("Content-Type", "application/json"), ("X-CSRF-Token", csrf)],
            body.to_string().as_bytes(),
        )
    }
}

/// Tim (10) with his mother Mara, Anna (an adult), a photo of each, and root allowed to see the
/// website. The page describes the website purpose.
fn school() -> TestStore {
    let t = TestStore::new();
    convert(&t.path("in/tim.jpg"), "gradient:blue-yellow", "1600x1200");
    convert(&t.path("in/anna.jpg"), "gradient:red-green", "800x600");
    t.ok(&["import", t.path("in").to_str().unwrap()]);
    t.ok(&["person", "add", "Tim", "--born", "2016-05-01"]);
    t.ok(&["person", "add", "Mara"]);
    t.ok(&["person", "add", "Anna"]);
    t.ok(&["person", "guardian", "Tim", "Mara"]);
    t.ok(&["link", "tim.jpg", "Tim"]);
    t.ok(&["link", "anna.jpg", "Anna"]);
    t.ok(&["consent", "grant", "Anna", "--purpose", "website"]);
    t.ok(&[
        "purpose",
        "describe",
        "website",
        "Photos on our public website, for two years.",
    ]);
    t.add_user("root");
    t.ok(&["user", "grant", "root", "--purpose", "website"]);
    t
}

fn convert(out: &std::path::Path, what: &str, size: &str) {
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let ok = Command::new("convert")
        .args(["-size", size, what])
        .arg(out)
        .status()
        .unwrap();
    assert!(ok.success());
}

fn invite(t: &TestStore, person: &str) -> Vec<String> {
    t.ok(&["--json", "portal", "invite", person])
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["url"].as_str().unwrap().to_string())
        .collect()
}

fn website(t: &TestStore) -> Vec<String> {
    common::visible(t, "root", "website")
}

/// A guardian opens the link, sees her child's photo and only his, withdraws for the website
/// (the photo is gone from the catalog's view at once), and gives consent again by signing;
/// each decision has a receipt, as a page and as JSON, and evidence of how it was made.
#[test]
fn a_guardian_decides_on_the_page_and_the_catalog_follows_at_once() {
    let t = school();
    let p = Portal::start(&t);
    let url = &invite(&t, "Tim")[0];
    let s = p.open(url);
    let page = p.get("/", Some(&s), None);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("Tim") && html.contains("Mara"), "{html}");
    assert!(html.contains("Photos on our public website"));
    assert!(!html.contains("Anna"), "another person's name on the page");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("default-src 'none'")));
    let me = p.get("/api/me", Some(&s), None).json();
    let persons = me["persons"].as_array().unwrap();
    assert_eq!(persons.len(), 1);
    assert_eq!(persons[0]["name"], "Tim");
    let tim = persons[0]["id"].as_i64().unwrap();
    let photos = persons[0]["photos"].as_array().unwrap();
    assert_eq!(photos.len(), 1, "{me}");
    let website_state = |me: &serde_json::Value| {
        me["persons"][0]["consents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["purpose"] == "website")
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(website_state(&me), "never_asked");
    // the preview: small, marked, not kept by the browser; Anna's photo is not shown
    let preview = p.get(photos[0]["preview"].as_str().unwrap(), Some(&s), None);
    assert_eq!(preview.status, 200);
    assert_eq!(preview.header("content-type"), Some("image/jpeg"));
    assert_eq!(preview.header("cache-control"), Some("no-store"));
    assert!(preview.body.len() > 1000);
    let anna_photo = t.ok(&["--json", "person", "show", "Anna"]).json()["assets"][0]
        .as_i64()
        .unwrap();
    assert_eq!(
        p.get(&format!("/preview/{anna_photo}"), Some(&s), None)
            .status,
        404
    );
    // a guardian's grant through the page: the photo shows on the website
    let csrf = me["csrf"].as_str().unwrap();
    assert_eq!(website(&t), ["anna.jpg"]);
    let given = p.consent(&s, csrf, tim, "website", "give", Some("Mara de Vries"));
    assert_eq!(given.status, 200, "{}", given.text());
    assert_eq!(website(&t), ["anna.jpg", "tim.jpg"]);
    assert_eq!(
        website_state(&p.get("/api/me", Some(&s), None).json()),
        "valid"
    );
    // withdrawn in one request: gone at once
    let w = p.consent(&s, csrf, tim, "website", "withdraw", None);
    assert_eq!(w.status, 200, "{}", w.text());
    assert_eq!(website(&t), ["anna.jpg"]);
    let event = w.json()["event"].as_i64().unwrap();
    let receipt = p.get(&format!("/receipt/{event}"), Some(&s), None);
    assert_eq!(receipt.status, 200);
    assert!(
        receipt.text().contains("Consent withdrawn"),
        "{}",
        receipt.text()
    );
    let dpv = p
        .get(&format!("/receipt/{event}.json"), Some(&s), None)
        .json();
    assert!(dpv.to_string().contains("dpv:ConsentWithdrawn"), "{dpv}");
    // given again through the form, with the box ticked and the name typed
    let me = p.get("/api/me", Some(&s), None).json();
    let hash = me["persons"][0]["consents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["purpose"] == "website")
        .unwrap()["text_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let form = |agree: bool| {
        let mut f = format!(
            "csrf={csrf}&person={tim}&purpose=website&action=give&signed_name=Mara+de+Vries&text_sha256={hash}"
        );
        if agree {
            f.push_str("&agree=yes");
        }
        f
    };
    let ct = [("Content-Type", "application/x-www-form-urlencoded")];
    let unticked = p.post("/consent", Some(&s), &ct, form(false).as_bytes());
    assert_eq!(unticked.status, 400);
    assert_eq!(website(&t), ["anna.jpg"]);
    let signed = p.post("/consent", Some(&s), &ct, form(true).as_bytes());
    assert_eq!(signed.status, 303, "{}", signed.text());
    assert!(signed.location.as_deref().unwrap().starts_with("/receipt/"));
    assert_eq!(website(&t), ["anna.jpg", "tim.jpg"]);
    // the catalog knows how each decision was made
    let list = t
        .ok(&["--json", "consent", "list", "--person", "Tim"])
        .stdout;
    assert!(
        list.contains("portal-grant.json") && list.contains("portal-withdraw.json"),
        "{list}"
    );
    let audit = t.ok(&["--json", "audit", "list"]).stdout;
    assert_eq!(
        audit.matches("portal.preview").count(),
        1,
        "one record per session and photo"
    );
    // in Dutch when the browser asks for it
    let nl = p.get("/", Some(&s), Some("nl-NL,nl;q=0.9,en;q=0.5")).text();
    assert!(
        nl.contains("Toestemming intrekken") && nl.contains("lang=\"nl\""),
        "{nl}"
    );
}

/// Guessed links are limited per client; a session ends when its link is revoked; forged
/// requests (no CSRF token, another person's id, no cookie) are refused; bodies and heads are
/// bounded.
#[test]
fn the_page_refuses_what_an_attacker_tries() {
    let t = school();
    let p = Portal::start(&t);
    let urls = invite(&t, "Tim");
    // guessed tokens: 404 ten times, then 429 (even for a good link, from that client)
    for i in 0..10 {
        let a = p.get(
            &format!("/i/guess{i}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            None,
            None,
        );
        assert_eq!(a.status, 404);
        assert!(a.cookie.is_none());
    }
    let token = urls[0].rsplit('/').next().unwrap();
    assert_eq!(p.get(&format!("/i/{token}"), None, None).status, 429);
    // (a new portal forgets counts: the limit is per process and window)
    drop(p);
    let p = Portal::start(&t);
    let s = p.open(&urls[0]);
    let me = p.get("/api/me", Some(&s), None).json();
    let csrf = me["csrf"].as_str().unwrap().to_string();
    let tim = me["persons"][0]["id"].as_i64().unwrap();
    // no cookie, a made-up cookie
    assert_eq!(p.get("/api/me", None, None).status, 401);
    assert_eq!(p.get("/api/me", Some("forged"), None).status, 401);
    assert_eq!(p.get("/", None, None).status, 401);
    // no or a wrong CSRF token
    let json = [("Content-Type", "application/json")];
    let body =
        serde_json::json!({"person": tim, "purpose": "website", "action": "withdraw"}).to_string();
    assert_eq!(
        p.post("/api/consent", Some(&s), &json, body.as_bytes())
            .status,
        403
    );
    let wrong = [
        ("Content-Type", "application/json"),
        ("X-CSRF-Token", "nope"),
    ];
    assert_eq!(
        p.post("/api/consent", Some(&s), &wrong, body.as_bytes())
            .status,
        403
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let f = format!("person={tim}&purpose=website&action=withdraw");
    assert_eq!(
        p.post("/consent", Some(&s), &form, f.as_bytes()).status,
        403
    );
    // another person (Anna, whom this link is not about), a purpose not asked about
    let anna = t.ok(&["--json", "person", "show", "Anna"]).json()["person"]["id"]
        .as_i64()
        .unwrap();
    let a = p.consent(&s, &csrf, anna, "website", "withdraw", None);
    assert_eq!(a.status, 404, "{}", a.text());
    assert!(!a.text().contains("Anna"));
    assert_eq!(website(&t), ["anna.jpg"], "nothing was recorded for Anna");
    // a grant needs a typed name
    assert_eq!(
        p.consent(&s, &csrf, tim, "website", "give", None).status,
        400
    );
    assert_eq!(
        p.consent(&s, &csrf, tim, "website", "give", Some(&"x".repeat(500)))
            .status,
        400
    );
    // a huge body is refused before it is read (the answer comes while the body is sent)
    let addr = p.base.strip_prefix("http://").unwrap();
    let mut big = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /api/consent HTTP/1.1\r\nHost: x\r\nCookie: consentfs_session={s}\r\nX-CSRF-Token: {csrf}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    );
    big.write_all(head.as_bytes()).unwrap();
    let _ = big.write_all(&vec![b'a'; 1 << 20]);
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // a client that sends its head slowly is cut off
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert!(
        t0.elapsed() < Duration::from_secs(12),
        "a slow head held the connection"
    );
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).contains("408"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // session fixation: a session id planted in the parent's browser (here the attacker's own,
    // from Anna's link) does not come to hold the link she opens with it
    let planted = p.open(&invite(&t, "Anna")[0]);
    let tim_again = invite(&t, "Tim")[0].clone();
    let opened = p.get(
        &format!("/i/{}", tim_again.rsplit('/').next().unwrap()),
        Some(&planted),
        None,
    );
    assert_eq!(opened.status, 303);
    let fresh = opened.cookie.unwrap();
    assert!(
        !fresh.contains(&planted),
        "the planted id was kept: {fresh}"
    );
    assert_eq!(
        p.get("/api/me", Some(&planted), None).status,
        401,
        "the planted id still works"
    );
    // the link revoked: the session's next request is refused
    t.ok(&["portal", "revoke", "--person", "Tim"]);
    assert_eq!(p.get("/api/me", Some(&s), None).status, 401);
    assert_eq!(p.get("/", Some(&s), None).status, 401);
    assert_eq!(
        p.consent(&s, &csrf, tim, "website", "give", Some("Mara"))
            .status,
        401
    );
}

/// A class photo in a purpose whose audience is the persons on it: offered for download to the
/// parents of the children on it, only while every child on it consents; one refusal takes it
/// away from all. Downloads are audited.
#[test]
fn a_class_photo_reaches_the_parents_of_the_children_on_it_and_nobody_else() {
    let t = school();
    convert(
        &t.path("class/klas.jpg"),
        "gradient:green-white",
        "1200x900",
    );
    t.ok(&["import", t.path("class").to_str().unwrap()]);
    t.ok(&["person", "add", "Lotte", "--born", "2017-02-02"]);
    t.ok(&["person", "add", "Joost"]);
    t.ok(&["person", "guardian", "Lotte", "Joost"]);
    t.ok(&["link", "klas.jpg", "Tim", "Lotte"]);
    t.ok(&[
        "purpose",
        "add",
        "parents",
        "--audience",
        "subjects",
        "--description",
        "The class photo, for the parents of the children on it.",
    ]);
    t.ok(&[
        "consent",
        "grant",
        "Tim",
        "--purpose",
        "parents",
        "--by",
        "Mara",
    ]);
    let p = Portal::start(&t);
    let mara = p.open(&invite(&t, "Tim")[0]);
    let joost = p.open(&invite(&t, "Lotte")[0]);
    let klas = t.ok(&["--json", "person", "show", "Lotte"]).json()["assets"][0]
        .as_i64()
        .unwrap();
    let offered = |s: &str| -> bool {
        let me = p.get("/api/me", Some(s), None).json();
        me["persons"][0]["photos"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ph| ph["id"] == klas && ph.get("download").is_some())
    };
    // Lotte's father has not decided: nobody gets it
    assert!(!offered(&mara) && !offered(&joost));
    assert_eq!(
        p.get(&format!("/download/{klas}/parents"), Some(&mara), None)
            .status,
        404
    );
    // he gives consent on the page: both parents get it
    let me = p.get("/api/me", Some(&joost), None).json();
    let lotte = me["persons"][0]["id"].as_i64().unwrap();
    let g = p.consent(
        &joost,
        me["csrf"].as_str().unwrap(),
        lotte,
        "parents",
        "give",
        Some("Joost"),
    );
    assert_eq!(g.status, 200, "{}", g.text());
    assert!(offered(&mara) && offered(&joost));
    let d = p.get(&format!("/download/{klas}/parents"), Some(&mara), None);
    assert_eq!(d.status, 200);
    assert_eq!(d.header("content-type"), Some("image/jpeg"));
    assert!(d
        .header("content-disposition")
        .unwrap()
        .contains("attachment"));
    // Anna's session (not a parent of a child on it) is never offered it
    let anna = p.open(&invite(&t, "Anna")[0]);
    assert_eq!(
        p.get(&format!("/download/{klas}/parents"), Some(&anna), None)
            .status,
        404
    );
    assert_eq!(
        p.get(&format!("/preview/{klas}"), Some(&anna), None).status,
        404
    );
    // one refusal takes it away from all
    let w = p.consent(
        &joost,
        me["csrf"].as_str().unwrap(),
        lotte,
        "parents",
        "withdraw",
        None,
    );
    assert_eq!(w.status, 200);
    assert!(!offered(&mara) && !offered(&joost));
    assert_eq!(
        p.get(&format!("/download/{klas}/parents"), Some(&mara), None)
            .status,
        404
    );
    // the download is on record
    let audit = t.ok(&["--json", "audit", "list"]).stdout;
    assert_eq!(audit.matches("portal.download").count(), 1, "{audit}");
    // and in the access report of each child on it
    let report = t.path("report-lotte");
    t.ok(&["person", "report", "Lotte", report.to_str().unwrap()]);
    let index = std::fs::read_to_string(report.join("index.json")).unwrap();
    assert!(index.contains("portal.download"), "{index}");
}

/// The page in a real browser (headless Chromium through chromedriver, as Debian ships them):
/// a guardian opens the link, sees her child's photo, withdraws for the website with one click
/// and a confirmation, and the photo is gone from a real mount; then she gives consent again
/// by typing her name and ticking the text, and it is back. With `CONSENTFS_SCREENSHOTS=DIR`
/// the main pages are saved there at desktop and phone width (contrib/portal/screenshots/).
#[test]
fn a_guardian_withdraws_and_gives_again_in_a_real_browser() {
    use common::mount::{wait_for, Mount};
    use fantoccini::Locator;
    let t = school();
    t.ok(&[
        "consent",
        "grant",
        "Tim",
        "--purpose",
        "website",
        "--by",
        "Mara",
    ]);
    let m = Mount::start(&t);
    let photo = m.path("root/website/tim.jpg");
    assert!(photo.exists());
    let p = Portal::start(&t);
    let url = invite(&t, "Tim")[0].replace("http://127.0.0.1:8080", &p.base);
    // chromedriver on a free port
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _driver = Kill(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)"),
    );
    let shots = std::env::var_os("CONSENTFS_SCREENSHOTS").map(std::path::PathBuf::from);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--lang=en-GB"] }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut c = None;
        for _ in 0..50 {
            match fantoccini::ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => {
                    c = Some(client);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        let c = c.expect("chromedriver did not start");
        let shot = |name: &'static str| {
            let c = c.clone();
            let shots = shots.clone();
            async move {
                let Some(dir) = shots else { return };
                std::fs::create_dir_all(&dir).unwrap();
                for (w, h, kind) in [(1280u32, 1100u32, "desktop"), (390, 1400, "phone")] {
                    c.set_window_size(w, h).await.unwrap();
                    let png = c.screenshot().await.unwrap();
                    std::fs::write(dir.join(format!("{name}-{kind}.png")), png).unwrap();
                }
                c.set_window_size(1280, 1100).await.unwrap();
            }
        };
        // axe-core's WCAG 2 A and AA rules on the page shown now: no violation
        let axe_source = axe_js();
        let accessible = |name: &'static str| {
            let c = c.clone();
            let source = axe_source.clone();
            async move {
                // run as the test's own script (WebDriver's, not the page's: its CSP allows none)
                c.execute(&format!("{source}\nreturn true;"), vec![])
                    .await
                    .unwrap();
                let found = c
                    .execute_async(
                        "const done = arguments[arguments.length - 1];
                         axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                            .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))
                            .catch(e => done(['axe failed: ' + e]));",
                        vec![],
                    )
                    .await
                    .unwrap();
                let found: Vec<String> = serde_json::from_value(found).unwrap();
                assert!(
                    found.is_empty(),
                    "the {name} page fails accessibility checks: {found:#?}"
                );
            }
        };
        // after a click that submits a form: the next page is there
        let arrive = |prefix: &'static str| {
            let c = c.clone();
            async move {
                for _ in 0..100 {
                    if c.current_url().await.unwrap().path().starts_with(prefix) {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                panic!("did not arrive at {prefix}");
            }
        };
        c.set_window_size(1280, 1100).await.unwrap();
        c.goto(&url).await.unwrap();
        // the token left the address bar
        let here = c.current_url().await.unwrap();
        assert_eq!(here.path(), "/", "{here}");
        let body = c
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("Tim") && !body.contains("Anna"), "{body}");
        // the child's photo is shown (loaded, not a broken image)
        let img = c.find(Locator::Css(".photos img")).await.unwrap();
        let loaded = c
            .execute(
                "return arguments[0].complete && arguments[0].naturalWidth",
                vec![serde_json::to_value(&img).unwrap()],
            )
            .await
            .unwrap();
        assert!(
            loaded.as_u64().unwrap_or(0) > 100,
            "the preview did not load: {loaded}"
        );
        shot("page").await;
        accessible("main").await;
        // withdraw: one click, then the confirmation
        let withdraw = c
            .find(Locator::XPath(
                "//article[h4='website']//button[contains(., 'Withdraw')]",
            ))
            .await
            .unwrap();
        withdraw.click().await.unwrap();
        arrive("/confirm").await;
        shot("confirm").await;
        accessible("confirmation").await;
        c.find(Locator::XPath("//button[contains(., 'Yes, withdraw')]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        arrive("/receipt/").await;
        let receipt = c
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(receipt.contains("Consent withdrawn"), "{receipt}");
        shot("receipt").await;
        accessible("receipt").await;
        let (gone, _) = wait_for(Duration::from_secs(5), || !photo.exists());
        assert!(
            gone,
            "the photo is still in the mount after the withdrawal on the page"
        );
        // give again: name typed, text ticked
        c.goto(&format!("{}/", p.base)).await.unwrap();
        let form = c
            .find(Locator::XPath(
                "//article[h4='website']//form[@method='post']",
            ))
            .await
            .unwrap();
        form.find(Locator::Css("input[name=signed_name]"))
            .await
            .unwrap()
            .send_keys("Mara de Vries")
            .await
            .unwrap();
        form.find(Locator::Css("input[name=agree]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        shot("give").await;
        form.find(Locator::Css("button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        arrive("/receipt/").await;
        let receipt = c
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            receipt.contains("Consent given") && receipt.contains("Mara"),
            "{receipt}"
        );
        let (back, _) = wait_for(Duration::from_secs(5), || photo.exists());
        assert!(
            back,
            "the photo is not back in the mount after consent was given again"
        );
        c.close().await.unwrap();
    });
    drop(m);
}

/// A mail server for the test: Debian's aiosmtpd, delivering into a maildir.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    fn start(t: &TestStore) -> SmtpSink {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = t.path("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd is needed for the mail test");
        let (up, _) = common::mount::wait_for(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "the test's mail server did not start");
        SmtpSink { child, port, dir }
    }

    /// The mails delivered, oldest first, once there are `n` (raw messages).
    fn mails(&self, n: usize) -> Vec<Vec<u8>> {
        let read = || -> Vec<(std::time::SystemTime, Vec<u8>)> {
            let Ok(entries) = std::fs::read_dir(self.dir.join("new")) else {
                return Vec::new();
            };
            let mut all: Vec<_> = entries
                .flatten()
                .map(|e| {
                    (
                        e.metadata().unwrap().modified().unwrap(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect();
            all.sort_by_key(|(t, _)| *t);
            all
        };
        let (got, _) = common::mount::wait_for(Duration::from_secs(20), || read().len() >= n);
        assert!(got, "{} mail(s) arrived, not {n}", read().len());
        read().into_iter().map(|(_, m)| m).collect()
    }
}

/// The text of a mail's body (its first part for a multipart mail), decoded.
fn mail_text(m: &mailparse::ParsedMail) -> String {
    if m.subparts.is_empty() {
        m.get_body().unwrap()
    } else {
        mail_text(&m.subparts[0])
    }
}

/// With mail configured, `portal invite --send` mails each decider their link, and makes
/// none while mail is not configured or a decider has no address; a decision on the page
/// mails its receipt to the decider, with the receipt's JSON as the organisation keeps it.
/// The server's password is never shown.
#[test]
fn links_and_receipts_are_mailed_where_mail_is_configured() {
    let t = school();
    let smtp = SmtpSink::start(&t);
    let none_made = |t: &TestStore| {
        let list = t.ok(&["--json", "portal", "list"]).json();
        assert_eq!(list.as_array().unwrap().len(), 0, "a link was made: {list}");
    };
    let r = t.run(&["portal", "invite", "Tim", "--send"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("mail is not configured"), "{}", r.stderr);
    none_made(&t);
    let server = format!("smtp://127.0.0.1:{}", smtp.port);
    let r = t.run(&[
        "mail",
        "set",
        "--smtp",
        "ftp://x",
        "--from",
        "po@school.example",
    ]);
    assert_ne!(r.code, 0, "a URL that is no mail server was taken");
    let r = t.run(&["mail", "set", "--smtp", &server, "--from", "not an address"]);
    assert_ne!(r.code, 0, "a sender that is no address was taken");
    let with_password = format!("smtp://po:s3cr3t-pw@127.0.0.1:{}", smtp.port);
    t.ok(&[
        "mail",
        "set",
        "--smtp",
        &with_password,
        "--from",
        "po@school.example",
    ]);
    let shown = t.ok(&["mail", "show"]).stdout;
    assert!(
        !shown.contains("s3cr3t-pw"),
        "the password is shown: {shown}"
    );
    assert!(shown.contains("po@school.example"), "{shown}");
    t.ok(&[
        "mail",
        "set",
        "--smtp",
        &server,
        "--from",
        "po@school.example",
    ]);

    // Mara decides for Tim and has no address yet
    let r = t.run(&["portal", "invite", "Tim", "--send"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("Mara"), "{}", r.stderr);
    none_made(&t);
    let r = t.run(&["person", "email", "Mara", "mara@@example"]);
    assert_ne!(r.code, 0, "a malformed address was taken");
    t.ok(&["person", "email", "Mara", "mara@example.org"]);
    let made = t
        .ok(&["--json", "portal", "invite", "Tim", "--send"])
        .json();
    let url = made[0]["url"].as_str().unwrap().to_string();
    assert_eq!(made[0]["mailed"], true, "{made}");
    let raw = smtp.mails(1);
    let invitation = mailparse::parse_mail(&raw[0]).unwrap();
    assert_eq!(
        invitation.headers.get_first_value("To").as_deref(),
        Some("mara@example.org")
    );
    let text = mail_text(&invitation);
    assert!(text.contains(&url), "the link is not in the mail: {text}");
    assert!(text.contains("Mara") && text.contains("Tim"), "{text}");

    // a decision on the page: its receipt is mailed to Mara
    let p = Portal::start(&t);
    let s = p.open(&url);
    let me = p.get("/api/me", Some(&s), None).json();
    let (csrf, tim) = (
        me["csrf"].as_str().unwrap().to_string(),
        me["persons"][0]["id"].as_i64().unwrap(),
    );
    let a = p.consent(&s, &csrf, tim, "website", "refuse", None);
    assert_eq!(a.status, 200, "{}", a.text());
    let event = a.json()["event"].as_i64().unwrap();
    let raw = smtp.mails(2);
    let receipt = mailparse::parse_mail(&raw[1]).unwrap();
    assert_eq!(
        receipt.headers.get_first_value("To").as_deref(),
        Some("mara@example.org")
    );
    assert!(receipt
        .headers
        .get_first_value("Subject")
        .unwrap()
        .contains(&format!("#{event}")));
    let text = mail_text(&receipt);
    assert!(
        text.contains("refused") && text.contains("website") && text.contains("Tim"),
        "{text}"
    );
    assert_eq!(receipt.subparts.len(), 2, "no receipt attached");
    let attached: serde_json::Value =
        serde_json::from_str(&receipt.subparts[1].get_body().unwrap()).unwrap();
    let kept = p
        .get(&format!("/receipt/{event}.json"), Some(&s), None)
        .json();
    assert_eq!(attached, kept, "the mailed receipt is not the one kept");
    // mail goes, the address does not show in the log nor in the audit
    let audit = t.ok(&["--json", "audit", "list"]).stdout;
    assert!(
        !audit.contains("mara@example.org"),
        "the address is in the audit log"
    );
    // the address is in Mara's access report, and goes with her erasure
    let report = |who: &str, dir: &str| {
        let dest = t.path(dir);
        t.ok(&["person", "report", who, dest.to_str().unwrap()]);
        std::fs::read_to_string(dest.join("index.json")).unwrap()
    };
    let index: serde_json::Value = serde_json::from_str(&report("Mara", "report-1")).unwrap();
    assert_eq!(index["person"]["email"], "mara@example.org");
    let id = index["person"]["id"].to_string();
    t.ok(&["person", "erase", "Mara", "--yes"]);
    assert!(
        !report(&id, "report-2").contains("mara@example.org"),
        "the address outlived the erasure"
    );
}

/// axe-core's script (`contrib/fetch-axe.sh` puts it where this looks).
fn axe_js() -> String {
    let path = std::env::var_os("CONSENTFS_AXE_JS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/local/share/consentfs/axe.min.js".into());
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "axe-core is needed for the accessibility check: run contrib/fetch-axe.sh ({}: {e})",
            path.display()
        )
    })
}

/// Behind a reverse proxy the limit on failed links counts each client, by the address the
/// proxy forwards (the nearest one: what a client writes further left proves nothing), not
/// the proxy's own; without `--trusted-proxy` the header is nobody's word.
#[test]
fn behind_a_trusted_proxy_failed_links_are_counted_per_client() {
    let t = school();
    let guess = |p: &Portal, i: usize, from: &str| {
        p.get_with(
            &format!("/i/guess{i}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            &[("X-Forwarded-For", from)],
        )
        .status
    };
    let p = Portal::start_with(&t, &["--trusted-proxy", "127.0.0.1"]);
    for i in 0..10 {
        assert_eq!(guess(&p, i, "203.0.113.5"), 404);
    }
    assert_eq!(
        guess(&p, 10, "203.0.113.5"),
        429,
        "the client was not limited"
    );
    // the same client writing another address in front of its own
    assert_eq!(guess(&p, 11, "198.51.100.7, 203.0.113.5"), 429);
    // another client behind the same proxy is not held up by the first
    assert_eq!(
        guess(&p, 12, "203.0.113.6"),
        404,
        "one client's failures block another"
    );
    drop(p);
    // not a trusted proxy: every request is the connection's, whatever the header says
    let p = Portal::start(&t);
    for i in 0..10 {
        assert_eq!(guess(&p, i, &format!("203.0.113.{i}")), 404);
    }
    assert_eq!(
        guess(&p, 10, "203.0.113.99"),
        429,
        "a forged header escaped the limit"
    );
}
