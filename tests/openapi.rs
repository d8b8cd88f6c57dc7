//! The admin API's OpenAPI document: it parses as OpenAPI 3.1 (with `oas3`, a model written
//! independently of the generator), every reference resolves, every protected route declares
//! the bearer scheme and its 401; and every documented route answers as documented on a seeded
//! database (SQLite and PostgreSQL): the documented success status with a body that matches
//! the documented schema, 401 without a token, and the documented 400/404/422 when provoked.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::{json, Value};
use zaloflow::channels::Payload;
use zaloflow::handoff::{HandoffChange, HandoffMessage, NewHandoff};
use zaloflow::store::{self, ContactChange, DynStore, Effects, ListChange};

const TOKEN: &str = "openapi-test-token";
/// The ids the document's examples use.
const CONTACT: &str = "8012345678901234567";
const LIST: &str = "vip-leads";

const RULES: &str = "rules:
  - id: welcome
    when: follow
    do:
      - send: \"Cảm ơn bạn đã quan tâm!\"
campaigns:
  - id: dang_ky
    enter_on:
      - form_submitted: dang_ky
    steps:
      - id: day_0
        day: 0
        do:
          - send: Cảm ơn bạn đã đăng ký!
      - id: day_3
        day: 3
        do:
          - send: Ưu đãi cho bạn!
";

/// Resolves a local `$ref` (`#/components/...`) in the document.
fn resolve<'a>(doc: &'a Value, r: &str) -> &'a Value {
    let pointer = r
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("non-local $ref {r}"));
    doc.pointer(pointer)
        .unwrap_or_else(|| panic!("$ref {r} does not resolve"))
}

fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(doc, resolve(doc, r)),
        None => v,
    }
}

/// A JSON Schema check of `v` against `schema`, for the keywords the generator emits. Stricter
/// than JSON Schema on one point: an object may not carry properties its schema does not
/// list (unless `additionalProperties` allows them), so an undocumented field fails.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = deref(doc, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        // The members together say which properties there are (a flattened struct): check
        // against their union, so that a member none of them lists still fails.
        let mut merged = serde_json::Map::new();
        let (mut props, mut required) = (serde_json::Map::new(), Vec::new());
        for s in all {
            let s = deref(doc, s);
            for (k, x) in s.as_object().into_iter().flatten() {
                match k.as_str() {
                    "properties" => props.extend(x.as_object().cloned().unwrap_or_default()),
                    "required" => required.extend(x.as_array().cloned().unwrap_or_default()),
                    _ => {
                        merged.insert(k.clone(), x.clone());
                    }
                }
            }
        }
        merged.insert("properties".into(), Value::Object(props));
        merged.insert("required".into(), Value::Array(required));
        let rest: serde_json::Map<_, _> = schema
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| *k != "allOf")
            .map(|(k, x)| (k.clone(), x.clone()))
            .collect();
        merged.extend(rest);
        return validate(doc, &Value::Object(merged), v, at);
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let ok = one
            .iter()
            .filter(|s| validate(doc, s, v, at).is_ok())
            .count();
        if ok != 1 {
            return Err(format!("{at}: matches {ok} of oneOf {schema}: {v}"));
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        if !any.iter().any(|s| validate(doc, s, v, at).is_ok()) {
            return Err(format!("{at}: matches none of anyOf: {v}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let fits = types.iter().any(|t| match *t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            other => panic!("unknown type {other}"),
        });
        if !fits {
            return Err(format!("{at}: {v} is not of type {types:?}"));
        }
    }
    if let (Some(obj), true) = (v.as_object(), types.contains(&"object") || types.is_empty()) {
        let props = schema.get("properties").and_then(Value::as_object);
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                return Err(format!("{at}: required member {r} missing: {v}"));
            }
        }
        for (k, x) in obj {
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(doc, s, x, &format!("{at}.{k}"))?,
                (None, Some(Value::Bool(true))) => {}
                (None, Some(s)) if s.is_object() => validate(doc, s, x, &format!("{at}.{k}"))?,
                (None, _) if props.is_some() => {
                    return Err(format!("{at}: member {k} is not documented: {v}"))
                }
                (None, _) => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// Every `$ref` anywhere in the document.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// (path, method, operation) of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

fn is_public(op: &Value) -> bool {
    op["security"].as_array().is_some_and(|s| {
        s.iter()
            .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
    })
}

async fn served(base: &str) -> (String, Value) {
    let r = client()
        .get(format!("{base}/admin/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_is_openapi_3_1_with_every_reference_resolved_and_every_route_secured() {
    let db = Db::new("sqlite").await;
    let app = TestApp::spawn(config(db.url(), &[("ZALOFLOW_ADMIN_TOKEN", TOKEN)])).await;
    let (text, doc) = served(&app.base).await;
    assert_eq!(
        doc,
        serde_json::to_value(zaloflow::http::admin::openapi()).unwrap()
    );

    // An independent OpenAPI 3.1 model reads it, and resolves what each operation refers to.
    let spec = oas3::from_json(&text).expect("parses as OpenAPI 3.1");
    let version = spec.validate_version().expect("a valid openapi version");
    assert_eq!((version.major, version.minor), (3, 1));
    let mut ids = BTreeSet::new();
    let mut count = 0;
    for (path, method, op) in spec.operations() {
        count += 1;
        let id = op.operation_id.clone().expect("operationId");
        assert!(ids.insert(id.clone()), "operationId {id} twice");
        assert!(
            op.summary.as_deref().is_some_and(|s| !s.is_empty()),
            "{method} {path} has no summary"
        );
        let mut declared = BTreeSet::new();
        for p in &op.parameters {
            let p = p.resolve(&spec).expect("parameter resolves");
            if p.location == oas3::spec::ParameterIn::Path {
                assert_eq!(p.required, Some(true), "{method} {path}: {}", p.name);
                declared.insert(p.name.clone());
            }
        }
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_string)
            .collect();
        assert_eq!(declared, in_template, "{method} {path}: path parameters");
        if let Some(b) = &op.request_body {
            let b = b.resolve(&spec).expect("request body resolves");
            assert!(
                b.content.contains_key("application/json"),
                "{method} {path}"
            );
        }
        let responses = op.responses.as_ref().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success answer"
        );
        for (status, r) in responses {
            let r = r.resolve(&spec).expect("response resolves");
            assert!(r.description.is_some_and(|d| !d.is_empty()), "{status}");
            for m in r.content.values() {
                if let Some(s) = &m.schema {
                    s.resolve(&spec).expect("schema resolves");
                }
            }
        }
    }
    assert_eq!(count, operations(&doc).len());

    // Every reference resolves, including those inside schemas.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "{}", all.len());
    for r in &all {
        resolve(&doc, r);
    }

    // The security scheme, and on every protected route the token and its refusals.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (path, method, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        if path == "/admin/openapi.json" {
            assert!(is_public(&op));
            continue;
        }
        assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
        for s in ["401", "403", "503"] {
            assert!(responses.contains_key(s), "{method} {path}: no {s}");
        }
        // Every error answer has the stable shape.
        for (status, r) in responses {
            if status.starts_with('2') {
                continue;
            }
            let r = deref(&doc, r);
            assert_eq!(
                r["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
    }
    app.shutdown().await;
}

/// Contact, list, a dead job (id 1), an open handoff (id 1) and the rules folder the
/// document's examples name.
async fn seed(s: &DynStore) {
    let now = zaloflow::clock::system_now();
    let mut c = ContactChange::new(CONTACT, now);
    c.display_name = Some("Lan".into());
    c.phone = Some("84912345678".into());
    c.follows = Some(true);
    c.tags_add = vec!["new_user".into()];
    s.apply_effects(
        &Effects {
            contacts: vec![c],
            lists: vec![ListChange::Add {
                list: LIST.into(),
                user_id: CONTACT.into(),
            }],
            // A member of the example campaign, waiting for its first step tomorrow.
            campaigns: vec![zaloflow::store::CampaignChange::Enter {
                campaign: "dang_ky".into(),
                contact_id: CONTACT.into(),
                entered_at: now,
                step: 0,
                step_id: Some("day_0".into()),
                next_at: Some(now + 86_400_000),
            }],
            handoffs: vec![HandoffChange::Open(Box::new(NewHandoff {
                user_id: CONTACT.into(),
                contact_name: Some("Lan".into()),
                priority: 1,
                team: Some("vip".into()),
                advisor: None,
                rule_id: Some("vip-care".into()),
                note: None,
                opened_at: now,
                deadline_at: now + 2 * 3_600_000,
                message: Some(HandoffMessage {
                    msg_id: Some("m1".into()),
                    text: Some("Cần tư vấn".into()),
                    at: now,
                }),
                notices: Vec::new(),
                source: "test".into(),
            }))],
            ..Default::default()
        },
        now,
    )
    .await
    .unwrap();
    // A dead letter: due tomorrow (the service's sender leaves it), claimed and failed here.
    // (A send whose channel is not configured is recorded as skipped, not dead.)
    let p = Payload::Sms {
        to: "84912345678".into(),
        text: "xin chào".into(),
    };
    let due = now + 86_400_000;
    s.enqueue_jobs(&[zaloflow::outbox::job(&p, due, "test")], now)
        .await
        .unwrap();
    let claimed = s
        .claim_jobs("seed", due, now, 60_000, 10, zaloflow::store::JobLane::All)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    s.finish_jobs(
        "seed",
        &[zaloflow::store::JobOutcome {
            id: claimed[0].id,
            result: zaloflow::store::JobResult::Dead {
                error: "HTTP 400: bad number".into(),
                code: Some(400),
            },
            contact: None,
        }],
        now,
    )
    .await
    .unwrap();
    assert_eq!(s.get_job(1).await.unwrap().unwrap().status, "dead");
}

/// Asserts each provoked status is documented before calling, and records it.
struct Tally<'a> {
    name: &'a str,
    documented: &'a [u16],
    seen: &'a mut Vec<u16>,
}

impl Tally<'_> {
    async fn expect(&mut self, call: &Call, token: Option<&str>, status: u16, what: &str) -> Value {
        assert!(
            self.documented.contains(&status),
            "{}: {what} would be {status}, which is not documented",
            self.name
        );
        self.seen.push(status);
        let (got, body) = call.send(token).await;
        assert_eq!(got, status, "{} ({what}): {body}", self.name);
        body
    }
}

struct Call {
    method: String,
    url: String,
    body: Option<String>,
}

impl Call {
    async fn send(&self, token: Option<&str>) -> (u16, Value) {
        let mut req = client().request(self.method.parse().unwrap(), &self.url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = &self.body {
            req = req
                .header("content-type", "application/json")
                .body(b.clone());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        assert_eq!(
            r.headers()["content-type"],
            "application/json",
            "{} {}",
            self.method,
            self.url
        );
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} {}: not JSON ({e}): {text}", self.method, self.url));
        (status, v)
    }
}

/// A request built from the document alone: path and query parameters from their examples
/// (or `path_value` for path parameters), the body from the request schema's example.
fn call_from_doc(
    doc: &Value,
    base: &str,
    path: &str,
    method: &str,
    op: &Value,
    path_value: &dyn Fn(&str, &Value) -> Option<String>,
) -> Call {
    let mut url = path.to_string();
    let mut query = Vec::new();
    for p in op["parameters"].as_array().into_iter().flatten() {
        let p = deref(doc, p);
        let name = p["name"].as_str().unwrap();
        let example = p.get("example").or_else(|| p["schema"].get("example"));
        match p["in"].as_str().unwrap() {
            "path" => {
                let v = path_value(name, p)
                    .or_else(|| {
                        example.map(|e| match e {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                    })
                    .unwrap_or_else(|| panic!("{method} {path}: no example for {name}"));
                url = url.replace(&format!("{{{name}}}"), &urlencode(&v));
            }
            "query" => {
                if let Some(Value::String(e)) = example {
                    query.push(format!("{name}={}", urlencode(e)));
                }
            }
            other => panic!("parameter in {other}"),
        }
    }
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let body = op.get("requestBody").map(|b| {
        let b = deref(doc, b);
        let schema = deref(doc, &b["content"]["application/json"]["schema"]);
        let example = schema
            .get("example")
            .unwrap_or_else(|| panic!("{method} {path}: the request body has no example"));
        example.to_string()
    });
    Call {
        method: method.to_uppercase(),
        url: format!("{base}{url}"),
        body,
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The schema of the documented answer `status` of an operation.
fn answer_schema<'a>(doc: &'a Value, op: &'a Value, status: u16) -> &'a Value {
    let r = op["responses"]
        .get(status.to_string())
        .unwrap_or_else(|| panic!("{status} is not documented"));
    &deref(doc, r)["content"]["application/json"]["schema"]
}

/// A background forecast's path.
const FORECAST_RUN: &str = "/admin/forecasts/{id}";

async fn every_documented_route_answers_as_documented(kind: &str) {
    let db = Db::new(kind).await;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("main.yaml"), RULES).unwrap();
    let dir = rules.path().to_str().unwrap().to_string();
    let app = TestApp::spawn(config(
        db.url(),
        &[("ZALOFLOW_ADMIN_TOKEN", TOKEN), ("ZALOFLOW_RULES", &dir)],
    ))
    .await;
    let s = store::open(db.url()).await.unwrap();
    seed(&s).await;
    let (_, doc) = served(&app.base).await;

    // Reads first, then changes, then deletions; erasing the contact last.
    let mut ops = operations(&doc);
    let rank = |path: &str, method: &str| match method {
        // A background forecast is followed once the POST has started one.
        "get" if path == FORECAST_RUN => 2,
        "get" => 0,
        "delete" if path == "/admin/contacts/{id}" => 4,
        "delete" => 3,
        // Taking a campaign member out is a deletion too (after moving them).
        _ if path.ends_with("/leave") => 3,
        _ => 1,
    };
    // The run `POST /admin/forecasts` started.
    let mut forecast_run: Option<String> = None;
    ops.sort_by_key(|(p, m, _)| (rank(p, m), p.clone()));
    let mut checked: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for (path, method, op) in &ops {
        let name = format!("{} {path}", method.to_uppercase());
        let documented: Vec<u16> = op["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.parse().unwrap())
            .collect();
        let success = *documented.iter().find(|s| (200..300).contains(*s)).unwrap();
        let mut seen = Vec::new();
        let mut t = Tally {
            name: &name,
            documented: &documented,
            seen: &mut seen,
        };

        // Refusals first, so nothing below is changed by them.
        let no_values = |_: &str, _: &Value| None;
        if !is_public(op) {
            let call = call_from_doc(&doc, &app.base, path, method, op, &no_values);
            let body = t.expect(&call, None, 401, "no token").await;
            validate(&doc, answer_schema(&doc, op, 401), &body, &name).unwrap();
            let body = t.expect(&call, Some("wrong"), 401, "wrong token").await;
            validate(&doc, answer_schema(&doc, op, 401), &body, &name).unwrap();
        }
        let has_path_params = path.contains('{');
        if documented.contains(&404) && has_path_params {
            let unknown = |_: &str, p: &Value| {
                Some(match p["schema"]["type"].as_str() {
                    Some("integer") => "987654321".to_string(),
                    _ => "no-such-thing".to_string(),
                })
            };
            let call = call_from_doc(&doc, &app.base, path, method, op, &unknown);
            let body = t.expect(&call, Some(TOKEN), 404, "unknown id").await;
            validate(&doc, answer_schema(&doc, op, 404), &body, &name).unwrap();
        }
        let int_param = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["in"] == "path" && p["schema"]["type"] == "integer");
        if int_param {
            let not_int = |_: &str, p: &Value| {
                (p["schema"]["type"] == "integer").then(|| "not-a-number".to_string())
            };
            let call = call_from_doc(&doc, &app.base, path, method, op, &not_int);
            let body = t
                .expect(&call, Some(TOKEN), 400, "a path id that is not a number")
                .await;
            validate(&doc, answer_schema(&doc, op, 400), &body, &name).unwrap();
        }
        let has_limit = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "limit");
        if has_limit {
            let mut call = call_from_doc(&doc, &app.base, path, method, op, &no_values);
            call.url = format!(
                "{}{}limit=0",
                call.url,
                if call.url.contains('?') { "&" } else { "?" }
            );
            let body = t.expect(&call, Some(TOKEN), 400, "limit=0").await;
            validate(&doc, answer_schema(&doc, op, 400), &body, &name).unwrap();
        }
        if op.get("requestBody").is_some() {
            let mut call = call_from_doc(&doc, &app.base, path, method, op, &no_values);
            call.body = Some("{\"unterminated".into());
            let body = t
                .expect(&call, Some(TOKEN), 400, "a body that is not JSON")
                .await;
            validate(&doc, answer_schema(&doc, op, 400), &body, &name).unwrap();
            call.body = Some("{\"no_such_member\": 1}".into());
            let body = t.expect(&call, Some(TOKEN), 422, "an unknown member").await;
            validate(&doc, answer_schema(&doc, op, 422), &body, &name).unwrap();
        }

        // The call the document describes, with the token.
        let started = |name: &str, _: &Value| {
            (path == FORECAST_RUN && name == "id")
                .then(|| forecast_run.clone())
                .flatten()
        };
        let call = call_from_doc(&doc, &app.base, path, method, op, &started);
        let body = t.expect(&call, Some(TOKEN), success, "as documented").await;
        if path == "/admin/forecasts" {
            forecast_run = body["id"].as_str().map(str::to_string);
        }
        if let Err(e) = validate(&doc, answer_schema(&doc, op, success), &body, &name) {
            panic!("{e}");
        }
        checked.insert(name, seen);
    }
    println!("{kind}: statuses checked per route: {checked:#?}");
    assert_eq!(checked.len(), ops.len());
    // What the calls did is real: the example edit, list add and erase took effect.
    assert!(s.get_contact(CONTACT).await.unwrap().is_none());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_documented_sqlite() {
    every_documented_route_answers_as_documented("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_answers_as_documented_postgres() {
    every_documented_route_answers_as_documented("postgres").await
}

/// The checker above must be able to say no, or the route test proves nothing.
#[test]
fn the_schema_check_refuses_what_the_document_does_not_say() {
    let doc = serde_json::to_value(zaloflow::http::admin::openapi()).unwrap();
    let schema = json!({"$ref": "#/components/schemas/ContactView"});
    let good = json!({"user_id": "1", "display_name": null, "phone": null, "email": null,
        "follows": true, "first_seen": 1, "last_interaction": null, "interaction_count": 0,
        "followed_at": null, "unfollowed_at": null, "tags": ["a"], "fields": {"k": "v"}});
    validate(&doc, &schema, &good, "contact").unwrap();
    let mut bad = Vec::new();
    let mut with = |k: &str, v: Value| {
        let mut x = good.clone();
        x[k] = v;
        bad.push(x);
    };
    with("undocumented", json!(1));
    with("first_seen", json!("yesterday"));
    with("user_id", Value::Null);
    with("tags", json!([1]));
    with("fields", json!({"k": 2}));
    with("follows", json!("yes"));
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("user_id");
    bad.push(missing);
    for b in bad {
        assert!(validate(&doc, &schema, &b, "contact").is_err(), "{b}");
    }
    let err = json!({"$ref": "#/components/schemas/ErrorBody"});
    validate(
        &doc,
        &err,
        &json!({"error": {"code": "x", "message": "y"}}),
        "e",
    )
    .unwrap();
    assert!(validate(&doc, &err, &json!({"error": "x"}), "e").is_err());
    assert!(validate(&doc, &err, &json!({"message": "x"}), "e").is_err());

    // A flattened struct (`allOf`): members of either part pass, any other fails.
    let view = json!({"$ref": "#/components/schemas/HandoffView"});
    let good = json!({"id": 1, "user_id": "1", "contact_name": null, "status": "open",
        "priority": 0, "team": null, "advisor": null, "rule_id": null, "note": null,
        "opened_at": 1, "deadline_at": 2, "first_text": null, "messages": 1,
        "last_message_at": null, "claimed_by": null, "claimed_at": null, "responded_by": null,
        "responded_at": null, "response_via": null, "resolved_by": null, "resolved_at": null,
        "escalation_level": 0, "source": "t", "updated_at": 1, "priority_name": "normal",
        "deadline_met": null, "time_left_ms": 5, "claim_url": "c", "resolve_url": "r"});
    validate(&doc, &view, &good, "handoff").unwrap();
    let mut extra = good.clone();
    extra["undocumented"] = json!(1);
    assert!(validate(&doc, &view, &extra, "handoff").is_err());
    for member in ["user_id", "claim_url"] {
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove(member);
        assert!(
            validate(&doc, &view, &missing, "handoff").is_err(),
            "{member}"
        );
    }
}
