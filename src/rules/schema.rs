//! The JSON Schema of rule files, for editors: with the YAML language server (VS Code's
//! "YAML" extension and others), a first line `# yaml-language-server: $schema=./schema.json`
//! gives completion and checking as people type. `rules/schema.json` is this schema, written
//! by `zaloflow rules schema > rules/schema.json` (a test keeps it current).
//!
//! The loader is the authority (it also checks names, templates and cross-references); the
//! schema describes the same shapes.

use serde_json::{json, Value};

fn text(desc: &str) -> Value {
    json!({"type": "string", "minLength": 1, "description": desc})
}

fn name(desc: &str) -> Value {
    json!({"type": "string", "pattern": "^\\S+$", "description": desc})
}

fn names(desc: &str) -> Value {
    json!({"oneOf": [name(desc), {"type": "array", "items": name(desc), "minItems": 1}]})
}

fn object(props: Value, required: &[&str], desc: &str) -> Value {
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
        "description": desc,
    })
}

fn days(desc: &str) -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": 3650, "description": desc})
}

fn duration() -> Value {
    json!({
        "type": "string",
        "pattern": "^\\s*([0-9]+\\s*[smhdw]\\s*)+$",
        "description": "a duration: a number and a unit (s, m, h, d, w), e.g. 30m, 2h, 1d, 1h30m",
    })
}

fn clock() -> Value {
    json!({
        "type": "string",
        "pattern": "^([01]?[0-9]|2[0-3]):[0-5][0-9]$",
        "description": "a local time HH:MM in the OA time zone, in quotes: \"05:00\"",
    })
}

fn texts(d: &str) -> Value {
    json!({"oneOf": [text(d), {"type": "array", "items": text(d), "minItems": 1}]})
}

fn no_value(d: &str) -> Value {
    json!({"type": "null", "description": d})
}

fn template(d: &str) -> Value {
    text(&format!("{d} (template: {{{{display_name}}}}, {{{{phone}}}}, {{{{email}}}}, {{{{tags}}}}, {{{{user_id}}}}, {{{{field.NAME}}}}; fallback: {{{{display_name | \"bạn\"}}}})"))
}

/// `when:`: the triggers.
fn trigger_schema() -> Value {
    let message = object(
        json!({
            "contains": texts("the message holds these whole words (any upper/lower case): `giá` finds \"Giá bao nhiêu?\", not \"Giáng sinh\"; a list: any of them"),
            "contains_text": texts("the message holds this text anywhere, even inside a word; a list: any of them"),
            "equals": texts("the whole message is this text (any upper/lower case)"),
            "accents": {"enum": ["required", "optional"], "description": "`optional`: contains, contains_text and equals match with or without dấu (\"gia bao nhieu\" = \"giá bao nhiêu\"); default `required`"},
            "regex": text("a regular expression the message matches (case-insensitive)"),
            "attachment": {"enum": ["image", "sticker", "file", "link", "gif", "audio", "video", "location", "any"]},
        }),
        &[],
        "the user wrote to the OA",
    );
    let word_triggers = json!({"enum": ["message", "follow", "unfollow", "chat_now", "info_submitted", "oa_reply", "email_opened", "email_clicked"],
        "description": "a trigger without options"});
    let trigger_map = json!({
        "type": "object",
        "minProperties": 1,
        "additionalProperties": false,
        "properties": {
            "message": {"oneOf": [{"type": "null"}, message]},
            "follow": no_value("the user followed the OA"),
            "unfollow": no_value("the user unfollowed the OA"),
            "chat_now": no_value("the user tapped the \"Nhắn tin\" button"),
            "info_submitted": no_value("the user shared their info"),
            "oa_reply": no_value("an agent replied from the OA console"),
            "tag_added": name("the tag (added by Zalo, staff or a rule)"),
            "tag_removed": name("the tag"),
            "schedule": text("a 5-field cron pattern in the OA time zone, e.g. \"0 9 * * *\""),
            "inactive": object(json!({"min_days": days("silent at least this many days"), "max_days": days("and at most this many")}), &["min_days"], "the contact has been silent for a while (scheduler)"),
            "special_day": object(json!({"field": name("a contact's date field, e.g. dob (DD/MM/YYYY) or birthday (YYYY-MM-DD)"), "date": {"type": "string", "pattern": "^[0-9]{1,2}/[0-9]{1,2}(/[0-9]{4})?$", "description": "a date of the shop's own, DD/MM, every year"}, "days_before": days("send this many days before")}), &[], "a birthday or other date, once a year (scheduler)"),
            "field_changed": {"oneOf": [name("the field"), object(json!({"field": name("the field"), "to": text("only when it takes this value")}), &["field"], "a contact field changed")]},
            "form_submitted": name("the form name (POST /forms/NAME)"),
            "email_opened": {"oneOf": [{"type": "null"}, object(json!({"email": text("the rule or step that sent the email"), "machine_opens": {"type": "boolean", "description": "also count a machine's fetch (Apple Mail Privacy Protection, security scanners) as an open; default false. A click always counts."}}), &[], "")]},
            "email_not_opened": object(json!({"within_hours": {"type": "integer", "minimum": 1}, "email": text("the rule or step that sent the email"), "machine_opens": {"type": "boolean", "description": "a machine's fetch (Apple Mail Privacy Protection, security scanners) counts as an open, so no follow-up; default false. An open or a click by a person always counts."}}), &["within_hours"], "an email was not opened (nor clicked) in time"),
            "email_clicked": {"oneOf": [{"type": "null"}, object(json!({"email": text("the rule or step that sent the email"), "link": text("only this link")}), &[], "")]},
            "after_step": object(json!({"campaign": name("the campaign"), "step": {"type": ["string", "integer"]}}), &["campaign", "step"], "a campaign step ran"),
        }
    });
    json!({"oneOf": [word_triggers, trigger_map]})
}

/// `if:`: the conditions.
fn condition_schema() -> Value {
    let duration = duration();
    let clock = clock();
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "conditions; several in one mapping must all hold",
        "properties": {
            "all": {"oneOf": [{"$ref": "#/$defs/condition"}, {"type": "array", "items": {"$ref": "#/$defs/condition"}}]},
            "any": {"type": "array", "items": {"$ref": "#/$defs/condition"}, "minItems": 1},
            "not": {"$ref": "#/$defs/condition"},
            "time_between": {"oneOf": [
                {"type": "array", "items": clock, "minItems": 2, "maxItems": 2},
                object(json!({"from": clock, "to": clock}), &["from", "to"], ""),
            ], "description": "local time of day, both ends included: [\"05:00\", \"10:59\"]"},
            "weekdays": {"oneOf": [
                {"$ref": "#/$defs/weekday"},
                {"type": "array", "items": {"$ref": "#/$defs/weekday"}, "minItems": 1},
            ]},
            "silent_for": object(json!({"min_days": days(""), "max_days": days("")}), &[], "whole days since the last interaction before this event"),
            "last_interaction_within": duration,
            "has_tag": names("has every one of these tags"),
            "lacks_tag": names("has none of these tags"),
            "follows": {"type": "boolean"},
            "in_list": name("a contact list declared under lists:"),
            "group": name("a contact list declared under lists:"),
            "field": {
                "type": "object",
                "properties": {"name": name("a field (or phone, email, display_name)"), "equals": {"type": ["string", "number", "boolean"]}, "contains": text(""), "is_set": {"type": "boolean"}},
                "required": ["name"],
                "additionalProperties": false,
            },
        }
    })
}

/// `do:`: the actions, and the sends a `try:` may choose from.
fn action_schema() -> (Value, Value) {
    let duration = duration();
    let clock = clock();
    let button = json!({
        "type": "object",
        "properties": {"title": template("the button's label"), "url": template("opens this URL"), "phone": template("calls this number"), "query": template("sends this text to the OA")},
        "required": ["title"],
        "additionalProperties": false,
    });
    // A/B variants of a send (issue 10): `text:` or `variants:`.
    let mut send = object(
        json!({
            "text": template("the message"),
            "variants": {
                "type": "array",
                "minItems": 2,
                "maxItems": 26,
                "description": "A/B test: each contact always gets the same variant of this rule, contacts spread by weight; reports compare them",
                "items": object(json!({
                    "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$", "description": "shown in reports (default a, b, c…)"},
                    "weight": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "share of contacts (default 1)"},
                    "text": template("this variant's message"),
                }), &["text"], "one wording"),
            },
            "image": template("an image URL"),
            "buttons": {"type": "array", "items": button, "maxItems": 5},
            "via": {"enum": ["zalo", "zalo_promotion", "zalo_transaction"], "description": "zalo: customer-service (within 7 days of the user's last interaction); zalo_promotion: a promotion template to followers, 07:00–22:00 (one planned outside waits), at most one a day per user; zalo_transaction: a transaction message"},
        }),
        &[],
        "an OA message",
    );
    send["oneOf"] = json!([{"required": ["text"]}, {"required": ["variants"]}]);
    let template_tag = json!({"enum": ["transaction", "customer_care", "promotion", 1, 2, 3], "description": "the tag the template was approved with: transaction (1), customer_care (2), promotion (3)"});
    let action_map = json!({
        "type": "object",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": false,
        "description": "one action per list item",
        "properties": {
            "send": {"oneOf": [template("an OA message"), send]},
            "sms": {"oneOf": [template("an SMS to the contact's phone"), object(json!({"text": template(""), "to": template("the number (default: the contact's)")}), &["text"], "")]},
            "email": object(json!({"subject": template(""), "html": template(""), "text": template(""), "to": template("the address (default: the contact's)"), "links": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^https?://"}, "description": "named links: name: URL (email_clicked: {link: name})"}}), &["subject"], "an email (opens and clicks are tracked)"),
            "zns": object(json!({"template_id": text("the ZNS template id"), "data": {"type": "object", "additionalProperties": {"type": ["string", "number"]}}, "phone": template("default: the contact's"), "tag": template_tag.clone()}), &["template_id"], "a ZNS template message by phone"),
            "template": object(json!({"id": text("the template's id in Zalo's console"), "template_id": text("the same as id"), "tag": template_tag, "by": {"enum": ["user", "phone"], "description": "user (default): to the contact's Zalo id; phone: to their phone number (as ZNS)"}, "data": {"type": "object", "additionalProperties": {"type": ["string", "number"]}, "description": "the template's parameters: name: value (values may use {{fields}})"}, "phone": template("with by: phone (default: the contact's)")}), &["tag"], "a template message (ZBS): tag 1 any hour; tags 2 and 3 07:00–22:00; tag 3 at most once a day per user"),
            "try": {"type": "array", "minItems": 2, "items": {"$ref": "#/$defs/send_choice"}, "description": "sends to try in order: the first Zalo will accept for this contact now is made; if Zalo refuses it when sent (-230, -232, -249, -213) the next goes instead"},
            "notify": {"oneOf": [template("a team-chat message"), object(json!({"channel": name("a chat channel declared under chat_channels:"), "text": template("")}), &["text"], "")]},
            "task": {"oneOf": [template("a task title"), object(json!({"title": template(""), "description": template(""), "due_in": duration}), &["title"], "")]},
            "tag": names("add these tags (also in Zalo)"),
            "untag": names("remove these tags (also in Zalo)"),
            "set_field": object(json!({"name": name("the field"), "value": template("")}), &["name", "value"], "set a contact field"),
            "list": object(json!({"add": name(""), "remove": name(""), "copy": name(""), "move": name(""), "from": name("")}), &[], "add to / remove from / copy / move between contact lists (declared under lists:)"),
            "handoff": {"oneOf": [{"type": "null"}, object(json!({
                "team": name("a chat channel declared under chat_channels:"),
                "advisor": text("a dedicated advisor"),
                "deadline": duration,
                "priority": {"enum": ["normal", "high", "urgent"]},
                "note": template(""),
            }), &[], "hand the conversation to people")]},
            "wait": {"oneOf": [duration, object(json!({"until": clock}), &["until"], "")]},
            "stop": {"type": "null"},
        }
    });
    // A choice of `try:`: one of the sending actions.
    let mut send_choice = action_map.clone();
    if let Some(props) = send_choice["properties"].as_object_mut() {
        props.retain(|k, _| matches!(k.as_str(), "send" | "template" | "zns" | "sms" | "email"));
    }
    send_choice["description"] = json!("one send");
    (action_map, send_choice)
}

pub fn json_schema() -> Value {
    let duration = duration();
    let clock = clock();
    let trigger = trigger_schema();
    let condition = condition_schema();
    let (action_map, send_choice) = action_schema();
    let rule = json!({
        "type": "object",
        "required": ["id", "when", "do"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "pattern": "^[\\w.-]+$", "description": "unique across the folder"},
            "description": {"type": "string"},
            "enabled": {"type": "boolean", "default": true},
            "priority": {"type": "integer", "default": 0, "description": "higher runs first"},
            "when": {"oneOf": [{"$ref": "#/$defs/trigger"}, {"type": "array", "items": {"$ref": "#/$defs/trigger"}, "minItems": 1}], "description": "what starts the rule (a list: any of them)"},
            "if": {"oneOf": [{"$ref": "#/$defs/condition"}, {"type": "array", "items": {"$ref": "#/$defs/condition"}}]},
            "do": {"type": "array", "items": {"$ref": "#/$defs/action"}, "minItems": 1, "description": "actions, in order"},
            "once_per": {"enum": ["day", "period", "silence", "ever"], "description": "at most once per user per local day / time_between period / silence spell / ever"},
            "cooldown": duration,
        }
    });
    let entry = json!({"oneOf": [
        {"const": "follow"},
        object(json!({
            "follow": {"type": "null"},
            "form_submitted": name("a registration on POST /forms/NAME"),
            "tag_added": name("the tag was added"),
            "list_joined": name("the contact joined this list (declared under lists:)"),
        }), &[], "what enters a contact"),
    ]});
    let step = json!({
        "type": "object",
        "required": ["do"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "pattern": "^[\\w.-]+$", "description": "unique in the campaign (default: its number); emails of the step are CAMPAIGN/ID to rules"},
            "day": days("days after the contact entered (0: the day they entered)"),
            "at": clock,
            "after": duration,
            "if": {"oneOf": [{"$ref": "#/$defs/condition"}, {"type": "array", "items": {"$ref": "#/$defs/condition"}}], "description": "the step is skipped unless these hold"},
            "do": {"type": "array", "items": {"$ref": "#/$defs/action"}, "minItems": 1, "description": "what to send or do (any action)"},
        },
        "description": "one step: on `day` N, immediately (at the time of entry), `after:` a delay or `at:` a clock time",
    });
    let campaign = json!({
        "type": "object",
        "required": ["id", "enter_on", "steps"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "pattern": "^[\\w.-]+$", "description": "unique across the folder"},
            "description": {"type": "string"},
            "enabled": {"type": "boolean", "default": true},
            "enter_on": {"oneOf": [entry, {"type": "array", "items": entry, "minItems": 1}]},
            "repeat_registration": {"type": "boolean", "default": false, "description": "a repeat registration on the form runs the first step again (off: the form answers \"already registered\", nothing is stored and nothing runs)"},
            "repeat_cooldown": {"allOf": [duration], "default": "1h", "description": "with repeat_registration: a repeat this soon after the last run of the first step runs nothing (e.g. 30m, 1h, 1d)"},
            "weekdays": {"oneOf": [
                {"$ref": "#/$defs/weekday"},
                {"type": "array", "items": {"$ref": "#/$defs/weekday"}, "minItems": 1},
            ], "description": "the days steps may go out; a step due on another day goes out on the next allowed day"},
            "exit_if": {"oneOf": [{"$ref": "#/$defs/condition"}, {"type": "array", "items": {"$ref": "#/$defs/condition"}}], "description": "the goal: a contact for whom these hold leaves the campaign"},
            "steps": {"type": "array", "items": step, "minItems": 1},
        }
    });
    let declared = |what: &str| {
        json!({"oneOf": [
            {"type": "array", "items": name(what)},
            {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        ]})
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://zaloflow.local/rules.schema.json",
        "title": "zaloflow rule file",
        "description": "Automation rules for a Zalo Official Account. See rules/README.md.",
        "oneOf": [
            {
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": {
                    "rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
                    "tags": declared("a customer tag (optional: once a file lists tags, every tag a rule names must be listed)"),
                    "lists": declared("a contact list"),
                    "chat_channels": declared("a team-chat channel"),
                    "forms": declared("a form (POST /forms/NAME) that no campaign or rule names yet; forms nobody declares answer 404"),
                    "campaigns": {"type": "array", "items": {"$ref": "#/$defs/campaign"}},
                }
            },
            {"type": "array", "items": {"$ref": "#/$defs/rule"}},
        ],
        "$defs": {
            "rule": rule,
            "campaign": campaign,
            "trigger": trigger,
            "condition": condition,
            "send_choice": send_choice,
            "action": {"oneOf": [{"const": "stop"}, action_map]},
            "weekday": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "t2", "t3", "t4", "t5", "t6", "t7", "cn"]},
        }
    })
}

/// The schema as printed by `zaloflow rules schema` (and stored in `rules/schema.json`).
pub fn to_pretty_string() -> String {
    let mut s = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load::{
        ACTIONS, CAMPAIGN_KEYS, CONDITIONS, ENTRY_TRIGGERS, FILE_KEYS, RULE_KEYS, STEP_KEYS,
        TRIGGERS,
    };

    #[test]
    fn schema_knows_every_word_the_loader_knows() {
        let s = json_schema();
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let mut triggers = keys(&s["$defs"]["trigger"]["oneOf"][1]["properties"]);
        triggers.sort();
        let mut want: Vec<String> = TRIGGERS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(triggers, want);
        let mut conds = keys(&s["$defs"]["condition"]["properties"]);
        conds.sort();
        let mut want: Vec<String> = CONDITIONS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(conds, want);
        let mut actions = keys(&s["$defs"]["action"]["oneOf"][1]["properties"]);
        actions.sort();
        let mut want: Vec<String> = ACTIONS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(actions, want);
        let mut rk = keys(&s["$defs"]["rule"]["properties"]);
        rk.sort();
        let mut want: Vec<String> = RULE_KEYS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(rk, want);
        let mut fk = keys(&s["oneOf"][0]["properties"]);
        fk.sort();
        let mut want: Vec<String> = FILE_KEYS.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(fk, want);
        for (got, words) in [
            (&s["$defs"]["campaign"]["properties"], CAMPAIGN_KEYS),
            (
                &s["$defs"]["campaign"]["properties"]["steps"]["items"]["properties"],
                STEP_KEYS,
            ),
            (
                &s["$defs"]["campaign"]["properties"]["enter_on"]["oneOf"][0]["oneOf"][1]
                    ["properties"],
                ENTRY_TRIGGERS,
            ),
        ] {
            let mut got = keys(got);
            got.sort();
            let mut want: Vec<String> = words.iter().map(|s| s.to_string()).collect();
            want.sort();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn shipped_schema_file_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/rules/schema.json");
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("rules/schema.json"))
                .expect("rules/schema.json is JSON");
        assert_eq!(
            on_disk,
            json_schema(),
            "rules/schema.json is stale: run `zaloflow rules schema > rules/schema.json`"
        );
    }
}
