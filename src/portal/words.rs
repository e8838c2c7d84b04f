//! The consent page's words, in Dutch and English (chosen by the browser's Accept-Language),
//! written for parents, not for lawyers.

/// Dutch when the browser prefers it over English, else English.
pub fn language(accept: Option<&str>) -> &'static str {
    let Some(accept) = accept else { return "en" };
    let mut best = ("en", -1.0f32);
    for part in accept.split(',').take(20) {
        let mut it = part.trim().split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = if tag == "nl" || tag.starts_with("nl-") {
            "nl"
        } else if tag == "en" || tag.starts_with("en-") {
            "en"
        } else {
            continue;
        };
        if q > best.1 {
            best = (lang, q);
        }
    }
    best.0
}

/// Every word of the pages: (key, Dutch, English). One table, so neither language can lack one.
const WORDS: &[(&str, &str, &str)] = &[
    (
        "title",
        "Uw toestemming voor foto's",
        "Your consent for photos",
    ),
    (
        "hello",
        "Hallo",
        "Hello",
    ),
    (
        "intro",
        "Hier beslist u of foto's van de personen hieronder gebruikt mogen worden, en waarvoor. U kunt uw beslissing altijd veranderen: intrekken is net zo makkelijk als geven.",
        "Here you decide whether photos of the persons below may be used, and what for. You can change your decision at any time: withdrawing is as easy as giving.",
    ),
    (
        "as_guardian",
        "U beslist als ouder of voogd.",
        "You decide as parent or guardian.",
    ),
    (
        "alone",
        "is nu 16 en beslist zelf; uw link geldt niet meer voor deze persoon.",
        "is 16 now and decides alone; your link no longer applies to them.",
    ),
    (
        "photos",
        "Foto's",
        "Photos",
    ),
    (
        "photo",
        "Foto",
        "Photo",
    ),
    (
        "no_photos",
        "Er zijn nog geen foto's.",
        "There are no photos yet.",
    ),
    (
        "purposes",
        "Waarvoor wij het vragen",
        "What we ask about",
    ),
    (
        "now",
        "Nu",
        "Now",
    ),
    (
        "type_name",
        "Typ uw volledige naam als handtekening",
        "Type your full name to sign",
    ),
    (
        "agree",
        "Ik heb de tekst hierboven gelezen en ga akkoord",
        "I have read the text above and agree",
    ),
    (
        "give",
        "Toestemming geven",
        "Give consent",
    ),
    (
        "refuse",
        "Weigeren",
        "Refuse",
    ),
    (
        "withdraw",
        "Toestemming intrekken",
        "Withdraw consent",
    ),
    (
        "download",
        "Downloaden",
        "Download",
    ),
    (
        "back",
        "Terug",
        "Back",
    ),
    (
        "receipt",
        "Bevestiging van uw beslissing",
        "Receipt of your decision",
    ),
    (
        "receipt_intro",
        "Dit heeft u beslist. Bewaar of print deze bevestiging: de organisatie heeft precies hetzelfde vastgelegd.",
        "This is what you decided. Keep or print this receipt: the organisation recorded exactly the same.",
    ),
    (
        "decision",
        "Beslissing",
        "Decision",
    ),
    (
        "person",
        "Over",
        "About",
    ),
    (
        "by",
        "Door",
        "By",
    ),
    (
        "purpose",
        "Waarvoor",
        "For",
    ),
    (
        "when",
        "Wanneer",
        "When",
    ),
    (
        "reference",
        "Kenmerk",
        "Reference",
    ),
    (
        "as_json",
        "Dezelfde bevestiging als gegevens (JSON)",
        "The same receipt as data (JSON)",
    ),
    (
        "confirm_withdraw",
        "Wilt u de toestemming intrekken voor",
        "Do you want to withdraw consent for",
    ),
    (
        "confirm_refuse",
        "Wilt u weigeren voor",
        "Do you want to refuse for",
    ),
    (
        "yes_withdraw",
        "Ja, intrekken",
        "Yes, withdraw",
    ),
    (
        "yes_refuse",
        "Ja, weigeren",
        "Yes, refuse",
    ),
    (
        "consequence",
        "De foto's worden daarvoor direct niet meer gebruikt.",
        "The photos stop being used for it at once.",
    ),
    (
        "valid",
        "toestemming gegeven, geldig tot u die intrekt",
        "consent given, valid until you withdraw it",
    ),
    (
        "valid_until",
        "toestemming gegeven, geldig tot",
        "consent given, valid until",
    ),
    (
        "expired",
        "toestemming verlopen op",
        "consent expired on",
    ),
    (
        "withdrawn",
        "toestemming ingetrokken op",
        "consent withdrawn on",
    ),
    (
        "refused",
        "geweigerd op",
        "refused on",
    ),
    (
        "objected",
        "bezwaar gemaakt op",
        "objection recorded on",
    ),
    (
        "not_counting",
        "er is toestemming vastgelegd die niet telt (bijvoorbeeld gegeven door een kind onder de 16)",
        "a consent was recorded that does not count (for example given by a child under 16)",
    ),
    (
        "upcoming",
        "toestemming gaat in op",
        "consent starts on",
    ),
    (
        "never_asked",
        "nog niet beslist",
        "not decided yet",
    ),
    (
        "given",
        "Toestemming gegeven",
        "Consent given",
    ),
    (
        "withdrawn_now",
        "Toestemming ingetrokken",
        "Consent withdrawn",
    ),
    (
        "refused_now",
        "Geweigerd",
        "Refused",
    ),
    (
        "invalid_link",
        "Deze link werkt niet (verlopen, ingetrokken of niet goed overgenomen). Vraag de organisatie om een nieuwe.",
        "This link does not work (it expired, was revoked, or was copied wrongly). Ask the organisation for a new one.",
    ),
    (
        "no_session",
        "Open de link uit uw uitnodiging opnieuw.",
        "Please open the link from your invitation again.",
    ),
    (
        "too_many",
        "Te veel pogingen. Probeer het later opnieuw.",
        "Too many attempts. Please try again later.",
    ),
    (
        "forbidden",
        "Dit formulier is verlopen. Laad de pagina opnieuw.",
        "This form has expired. Please reload the page.",
    ),
    (
        "not_found",
        "Niet gevonden.",
        "Not found.",
    ),
    (
        "failed",
        "Dat lukte niet:",
        "That did not work:",
    ),
];

/// The words of the pages in `lang` (`nl` or `en`), by key.
pub fn words(lang: &str) -> serde_json::Value {
    let nl = lang == "nl";
    serde_json::Value::Object(
        WORDS
            .iter()
            .map(|(k, n, e)| (k.to_string(), serde_json::json!(if nl { n } else { e })))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browsers_preferred_language_is_taken() {
        assert_eq!(language(None), "en");
        assert_eq!(language(Some("nl-NL,nl;q=0.9,en;q=0.8")), "nl");
        assert_eq!(language(Some("en-GB,en;q=0.9,nl;q=0.8")), "en");
        assert_eq!(language(Some("de-DE,nl;q=0.5")), "nl");
        assert_eq!(language(Some("fr")), "en");
        assert_eq!(language(Some(";;;,q=x,nl;q=abc")), "nl");
    }

    #[test]
    fn every_word_is_there_once_in_both_languages() {
        let mut keys: Vec<&str> = WORDS.iter().map(|w| w.0).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), WORDS.len());
        assert!(WORDS.iter().all(|(_, n, e)| !n.is_empty() && !e.is_empty()));
        assert_eq!(words("nl")["give"], "Toestemming geven");
        assert_eq!(words("en")["give"], "Give consent");
    }
}
