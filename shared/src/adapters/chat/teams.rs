//! The Microsoft Teams payload of a notification: a message with one
//! Adaptive Card attachment, as both a Teams Workflows webhook ("Send
//! webhook alerts to a channel") and a classic incoming webhook accept it.
//! The card holds the headline (bold), the paragraphs, a `FactSet` of the
//! facts and an `Action.OpenUrl` per link.
//!
//! Teams takes a message of about 28 KB: the headline is cut to
//! [`HEADLINE_MAX`] characters, each paragraph to [`TEXT_MAX`], each fact's
//! value to [`FACT_MAX`], and the paragraphs and facts to a few, visibly
//! (`…`, "and N more").

use serde_json::{Value, json};

use super::{clip, headline};
use crate::ports::Notification;

/// The Adaptive Card schema version written (Teams renders up to 1.5 on the desktop, 1.4 everywhere).
pub const CARD_VERSION: &str = "1.4";
/// Characters of the headline.
pub const HEADLINE_MAX: usize = 300;
/// Characters of a paragraph.
pub const TEXT_MAX: usize = 2000;
/// Characters of a fact's value (its name: 100).
pub const FACT_MAX: usize = 500;
/// Paragraphs kept.
const TEXT_BLOCKS: usize = 6;
/// Facts kept.
const FACTS_MAX: usize = 15;
/// Buttons Teams shows; further links are listed in the text.
const ACTIONS_MAX: usize = 6;

/// The JSON body to POST to a Teams Workflows or incoming webhook.
pub fn payload(n: &Notification) -> Value {
    let m = &n.message;
    let mut body = vec![json!({
        "type": "TextBlock", "text": clip(headline(n), HEADLINE_MAX), "weight": "Bolder", "size": "Medium", "wrap": true,
    })];
    body.extend(m.lines.iter().take(TEXT_BLOCKS).map(|l| text_block(clip(l, TEXT_MAX))));
    if m.lines.len() > TEXT_BLOCKS {
        body.push(text_block(format!("… and {} more paragraphs", m.lines.len() - TEXT_BLOCKS)));
    }
    if !m.facts.is_empty() {
        let facts: Vec<Value> = m
            .facts
            .iter()
            .take(FACTS_MAX)
            .map(|f| json!({"title": clip(&f.name, 100), "value": clip(&f.value, FACT_MAX)}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
        if m.facts.len() > FACTS_MAX {
            body.push(text_block(format!("… and {} more facts", m.facts.len() - FACTS_MAX)));
        }
    }
    let actions: Vec<Value> = m
        .links
        .iter()
        .take(ACTIONS_MAX)
        .map(|l| json!({"type": "Action.OpenUrl", "title": clip(&l.label, 100), "url": l.url}))
        .collect();
    let more: Vec<String> = m.links.iter().skip(ACTIONS_MAX).map(|l| format!("[{}]({})", l.label, l.url)).collect();
    if !more.is_empty() {
        body.push(text_block(clip(&more.join(" · "), TEXT_MAX)));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": body,
    });
    if !actions.is_empty() {
        card["actions"] = Value::Array(actions);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

fn text_block(text: String) -> Value {
    json!({"type": "TextBlock", "text": text, "wrap": true})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Fact, Link, Message};
    use std::collections::BTreeMap;

    fn notification(message: Message) -> Notification {
        Notification { subject: "subject".into(), body: json!({}), attributes: BTreeMap::new(), message }
    }

    #[test]
    fn a_message_becomes_an_adaptive_card_with_a_fact_set_and_open_url_actions() {
        let n = notification(Message {
            headline: "Upgrade payments DB approved".into(),
            lines: vec!["Starts Tuesday 22:00 CET, for 1 h.".into()],
            facts: vec![Fact { name: "Service".into(), value: "payments".into() }],
            links: vec![Link { label: "Change".into(), url: "https://hub.example.com/changes/c-1".into() }],
        });
        assert_eq!(
            payload(&n),
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "msteams": {"width": "Full"},
                        "body": [
                            {"type": "TextBlock", "text": "Upgrade payments DB approved", "weight": "Bolder", "size": "Medium", "wrap": true},
                            {"type": "TextBlock", "text": "Starts Tuesday 22:00 CET, for 1 h.", "wrap": true},
                            {"type": "FactSet", "facts": [{"title": "Service", "value": "payments"}]},
                        ],
                        "actions": [{"type": "Action.OpenUrl", "title": "Change", "url": "https://hub.example.com/changes/c-1"}],
                    },
                }],
            })
        );
    }

    #[test]
    fn a_card_without_links_has_no_actions_and_a_headline_from_the_subject() {
        let card = &payload(&notification(Message::default()))["attachments"][0]["content"];
        assert_eq!(card["body"][0]["text"], "subject");
        assert!(card.get("actions").is_none());
    }

    #[test]
    fn long_text_and_long_lists_are_cut_visibly() {
        let n = notification(Message {
            headline: "h".repeat(5000),
            lines: (0..10).map(|i| format!("{i}{}", "x".repeat(3000))).collect(),
            facts: (0..25).map(|i| Fact { name: format!("f{i}"), value: "v".repeat(3000) }).collect(),
            links: (0..8).map(|i| Link { label: format!("l{i}"), url: format!("https://x.example/{i}") }).collect(),
        });
        let card = &payload(&n)["attachments"][0]["content"];
        let body = card["body"].as_array().expect("body");
        let headline = body[0]["text"].as_str().expect("headline");
        assert_eq!(headline.chars().count(), HEADLINE_MAX);
        assert!(headline.ends_with('…'));
        let texts: Vec<&str> = body.iter().filter_map(|b| b["text"].as_str()).collect();
        assert!(texts.contains(&"… and 4 more paragraphs"), "{texts:?}");
        assert!(texts.contains(&"… and 10 more facts"), "{texts:?}");
        assert!(texts.contains(&"[l6](https://x.example/6) · [l7](https://x.example/7)"), "{texts:?}");
        let facts = body.iter().find_map(|b| b["facts"].as_array()).expect("fact set");
        assert_eq!(facts.len(), 15);
        assert!(facts.iter().all(|f| f["value"].as_str().is_some_and(|v| v.chars().count() == FACT_MAX)));
        assert!(texts[1..7].iter().all(|t| t.chars().count() == TEXT_MAX && t.ends_with('…')), "{texts:?}");
        assert_eq!(card["actions"].as_array().map(Vec::len), Some(6));
        assert!(payload(&n).to_string().len() < 28_000, "within what Teams takes");
    }
}
