//! The Slack incoming-webhook payload of a notification: `text` (what the
//! push notification and screen readers say) and Block Kit `blocks`: a
//! header, sections for the paragraphs, two-column fields for the facts,
//! and the links in a closing section.
//!
//! Text in `mrkdwn` has Slack's control characters escaped (`&`, `<`, `>`)
//! and every part stays within Slack's limits (header 150 characters,
//! section 3000, field 2000, 10 fields a section, 50 blocks a message):
//! what is longer is cut, visibly, with `…`.

use serde_json::{Value, json};

use super::{clip, headline};
use crate::ports::Notification;

/// Characters of a header block's text.
pub const HEADER_MAX: usize = 150;
/// Characters of a section's text.
pub const SECTION_MAX: usize = 3000;
/// Characters of one field of a section.
pub const FIELD_MAX: usize = 2000;
/// Fields of one section.
pub const FIELDS_MAX: usize = 10;
/// Sections kept for the paragraphs, and for the facts (the rest is said to be cut).
const TEXT_SECTIONS: usize = 5;
const FACT_SECTIONS: usize = 3;

/// The JSON body to POST to a Slack incoming webhook.
pub fn payload(n: &Notification) -> Value {
    let headline = headline(n);
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": clip(headline, HEADER_MAX), "emoji": true},
    })];
    blocks.extend(paragraphs(&n.message.lines).into_iter().map(section));
    let facts = &n.message.facts;
    for chunk in facts.chunks(FIELDS_MAX).take(FACT_SECTIONS) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|f| mrkdwn_text(&format!("*{}*\n{}", escape(&f.name), escape(&f.value)), FIELD_MAX))
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let left = facts.len().saturating_sub(FIELDS_MAX * FACT_SECTIONS);
    if left > 0 {
        blocks.push(section(format!("… and {left} more facts")));
    }
    let links: Vec<String> = n
        .message
        .links
        .iter()
        .map(|l| format!("<{}|{}>", escape(&l.url).replace('|', "%7C"), escape(&l.label)))
        .collect();
    if !links.is_empty() {
        blocks.push(section(links.join("  ·  ")));
    }
    json!({"text": cut(&escape(headline), SECTION_MAX), "blocks": blocks})
}

/// The paragraphs as section texts, escaped: joined by blank lines into
/// sections of at most [`SECTION_MAX`] characters (a longer paragraph is
/// cut), at most [`TEXT_SECTIONS`] of them, the last saying what was left out.
fn paragraphs(lines: &[String]) -> Vec<String> {
    let mut sections: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let text = cut(&escape(line), SECTION_MAX);
        let full = sections.len() == TEXT_SECTIONS;
        match sections.last_mut() {
            Some(last) if last.chars().count() + 2 + text.chars().count() <= SECTION_MAX => {
                last.push_str("\n\n");
                last.push_str(&text);
            }
            Some(last) if full => {
                *last = cut(last, SECTION_MAX - 40);
                last.push_str(&format!("\n\n… and {} more paragraphs", lines.len() - i));
                break;
            }
            _ => sections.push(text),
        }
    }
    sections
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": mrkdwn_text(&text, SECTION_MAX)})
}

fn mrkdwn_text(text: &str, max: usize) -> Value {
    json!({"type": "mrkdwn", "text": cut(text, max)})
}

/// Escapes the characters Slack reads as control sequences in `mrkdwn` and `text`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` (escaped) cut to at most `max` characters, ending with `…` when
/// cut, never inside an escape (`&amp;`).
fn cut(text: &str, max: usize) -> String {
    let clipped = clip(text, max);
    if clipped.len() == text.len() {
        return clipped;
    }
    // A cut may fall inside `&amp;`, `&lt;` or `&gt;`: drop the partial escape.
    match clipped.rfind('&') {
        Some(at) if !clipped[at..].contains(';') => format!("{}…", &clipped[..at]),
        _ => clipped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Fact, Link, Message};
    use std::collections::BTreeMap;

    fn notification(message: Message) -> Notification {
        Notification {
            subject: "[approved] Upgrade payments DB".into(),
            body: json!({}),
            attributes: BTreeMap::new(),
            message,
        }
    }

    fn fact(name: &str, value: &str) -> Fact {
        Fact { name: name.into(), value: value.into() }
    }

    #[test]
    fn a_message_becomes_a_header_sections_fields_and_links() {
        let n = notification(Message {
            headline: "Upgrade payments DB approved".into(),
            lines: vec!["Starts Tuesday 22:00 CET, for 1 h.".into(), "Rollback: restore the snapshot.".into()],
            facts: vec![fact("Service", "payments"), fact("Risk", "medium")],
            links: vec![Link { label: "Change".into(), url: "https://hub.example.com/changes/c-1".into() }],
        });
        assert_eq!(
            payload(&n),
            json!({
                "text": "Upgrade payments DB approved",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "Upgrade payments DB approved", "emoji": true}},
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "Starts Tuesday 22:00 CET, for 1 h.\n\nRollback: restore the snapshot."}},
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*Service*\npayments"},
                        {"type": "mrkdwn", "text": "*Risk*\nmedium"},
                    ]},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "<https://hub.example.com/changes/c-1|Change>"}},
                ],
            })
        );
    }

    #[test]
    fn a_message_without_a_headline_is_headed_by_the_subject() {
        let p = payload(&notification(Message::default()));
        assert_eq!(p["blocks"][0]["text"]["text"], "[approved] Upgrade payments DB");
        assert_eq!(p["blocks"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn control_characters_are_escaped_in_mrkdwn_but_not_in_the_plain_header() {
        let n = notification(Message {
            headline: "R&D <ops> deploy".into(),
            lines: vec!["a < b && c > d <!channel>".into()],
            facts: vec![fact("A&B", "<x>")],
            links: vec![Link { label: "a|b <c>".into(), url: "https://x.example/?a=1&b=2|3".into() }],
        });
        let p = payload(&n);
        assert_eq!(p["text"], "R&amp;D &lt;ops&gt; deploy");
        assert_eq!(p["blocks"][0]["text"]["text"], "R&D <ops> deploy", "plain_text is shown as is");
        assert_eq!(p["blocks"][1]["text"]["text"], "a &lt; b &amp;&amp; c &gt; d &lt;!channel&gt;");
        assert_eq!(p["blocks"][2]["fields"][0]["text"], "*A&amp;B*\n&lt;x&gt;");
        assert_eq!(p["blocks"][3]["text"]["text"], "<https://x.example/?a=1&amp;b=2%7C3|a|b &lt;c&gt;>");
    }

    #[test]
    fn long_text_is_cut_visibly_within_slacks_limits() {
        let n = notification(Message {
            headline: "h".repeat(400),
            lines: (0..20).map(|_| "&".repeat(2000)).collect(),
            facts: (0..45).map(|i| fact(&format!("f{i}"), &"v".repeat(3000))).collect(),
            links: Vec::new(),
        });
        let p = payload(&n);
        let blocks = p["blocks"].as_array().expect("blocks");
        let header = blocks[0]["text"]["text"].as_str().expect("header");
        assert_eq!(header.chars().count(), HEADER_MAX);
        assert!(header.ends_with('…'));
        assert!(blocks.len() <= 50);
        let texts: Vec<&str> = blocks[1..].iter().filter_map(|b| b["text"]["text"].as_str()).collect();
        assert!(texts.iter().all(|t| t.chars().count() <= SECTION_MAX));
        // No escape is cut in half.
        let whole = |t: &str| {
            t.match_indices('&').all(|(i, _)| ["&amp;", "&lt;", "&gt;"].iter().any(|e| t[i..].starts_with(e)))
        };
        assert!(texts.iter().all(|t| whole(t)), "{texts:?}");
        assert!(texts.iter().any(|t| t.contains("more paragraphs")), "{texts:?}");
        assert!(texts.contains(&"… and 15 more facts"), "{texts:?}");
        let fields: Vec<&Value> = blocks.iter().filter_map(|b| b["fields"].as_array()).flatten().collect();
        assert_eq!(fields.len(), 30);
        assert!(fields.iter().all(|f| f["text"].as_str().is_some_and(|t| t.chars().count() <= FIELD_MAX)));
        assert!(p["text"].as_str().is_some_and(|t| t.chars().count() <= SECTION_MAX));
    }
}
