//! A YAML document as a tree of nodes that remember where they were written.
//!
//! Rule files are read through the event parser that `serde-saphyr` re-exports, not through
//! serde: every node keeps its line and column, scalars keep their text exactly as written
//! (`05:00` stays `05:00`, `no` stays `no`), and the checker can report every problem of a
//! file instead of stopping at the first.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span};

use crate::i18n::Lang;

/// A position in a file: line and column, both counted from 1 (columns in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar with its text after YAML escapes and folding. `plain` is false for quoted
    /// and block (`|`, `>`) scalars.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Keys in the order written (duplicates kept: the checker reports them).
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
    /// Character offset of the node's first character in the file.
    pub start: usize,
    /// Character offset just past the node.
    pub end: usize,
}

impl Node {
    /// The scalar's text, unless the node is a collection or a null.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }

    /// An empty value, `~` or `null` written without quotes.
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true } if text.is_empty() || text == "~" || text == "null" || text == "Null" || text == "NULL")
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// What kind of value this is, in words for error messages.
    pub fn describe(&self, lang: Lang) -> String {
        match &self.kind {
            _ if self.is_null() => msg!(lang, "rules.yaml.nothing"),
            NodeKind::Scalar { .. } => msg!(lang, "rules.yaml.single_value"),
            NodeKind::Seq(_) => msg!(lang, "rules.yaml.a_list"),
            NodeKind::Map(_) => msg!(lang, "rules.yaml.a_mapping"),
        }
    }
}

/// The parser's message (`SyntaxError::message`, in English) said for staff in `lang`: the
/// mistakes staff make (a colon in a text, a cut-off file, a wrong indent, a tab) in words,
/// anything else quoted as the parser gave it.
pub fn explain(lang: Lang, message: &str) -> String {
    if lang == Lang::En {
        return message.to_string();
    }
    let has = |s: &str| message.contains(s);
    if has("mapping values are not allowed") {
        msg!(lang, "rules.yaml.e_colon")
    } else if has("unclosed quote") || has("unexpected end of plain scalar") {
        msg!(lang, "rules.yaml.e_unclosed_quote")
    } else if has("unclosed bracket") {
        msg!(lang, "rules.yaml.e_unclosed_bracket")
    } else if has("unexpected EOF") || has("unexpected eof") {
        msg!(lang, "rules.yaml.e_eof")
    } else if has("after double-quoted scalar") || has("after single-quoted scalar") {
        msg!(lang, "rules.yaml.e_after_quote")
    } else if has("tab") {
        msg!(lang, "rules.yaml.e_tab")
    } else if has("did not find expected key")
        || has("expected '-' indicator")
        || has("indentation")
        || has("block sequence entries are not allowed")
    {
        msg!(lang, "rules.yaml.e_indent")
    } else if has("did not find expected node content") {
        msg!(lang, "rules.yaml.e_no_value")
    } else if has("unknown anchor") {
        msg!(lang, "rules.yaml.e_anchor")
    } else {
        msg!(lang, "rules.yaml.e_other", raw = message)
    }
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line() as u32,
        col: span.start.col() as u32 + 1,
    }
}

enum Frame {
    Seq(Node, Vec<Node>, usize),
    Map(Node, Vec<(Node, Node)>, Option<Node>, usize),
}

/// Parses every document of a file. An empty file has no documents.
pub fn parse(src: &str) -> Result<Vec<Node>, SyntaxError> {
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut parser = Parser::new_from_str(src);
    let mut root: Option<Node> = None;
    while let Some(item) = parser.next_event() {
        let (event, span) = item.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line() as u32,
                col: e.marker().col() as u32 + 1,
            },
            message: e.info(),
        })?;
        let finished: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd => None,
            Event::DocumentStart(..) => {
                root = None;
                None
            }
            Event::DocumentEnd => {
                if let Some(r) = root.take() {
                    docs.push(r);
                }
                None
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    pos: pos_of(&span),
                    start: span.start.index(),
                    end: span.end.index(),
                };
                Some((node, anchor))
            }
            Event::Alias(id) => {
                let node = anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    pos: pos_of(&span),
                    message: "alias to an unknown anchor".into(),
                })?;
                Some((node, 0))
            }
            Event::SequenceStart(_, anchor, _) => {
                let node = Node {
                    kind: NodeKind::Seq(Vec::new()),
                    pos: pos_of(&span),
                    start: span.start.index(),
                    end: span.end.index(),
                };
                stack.push(Frame::Seq(node, Vec::new(), anchor));
                None
            }
            Event::MappingStart(_, anchor, _) => {
                let node = Node {
                    kind: NodeKind::Map(Vec::new()),
                    pos: pos_of(&span),
                    start: span.start.index(),
                    end: span.end.index(),
                };
                stack.push(Frame::Map(node, Vec::new(), None, anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(mut node, items, anchor)) => {
                    node.end = span.end.index().max(node.end);
                    node.kind = NodeKind::Seq(items);
                    Some((node, anchor))
                }
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(mut node, entries, _, anchor)) => {
                    node.end = span.end.index().max(node.end);
                    node.kind = NodeKind::Map(entries);
                    Some((node, anchor))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    if let Some(r) = root.take() {
        docs.push(r);
    }
    Ok(docs)
}

/// Line and column (from 1) of a character offset in `src`.
pub fn pos_at(src: &str, char_offset: usize) -> Pos {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in src.chars().enumerate() {
        if i == char_offset {
            break;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    Pos { line, col }
}

/// The source text of a node, as written (character offsets).
pub fn source_of<'a>(src: &'a str, node: &Node) -> &'a str {
    let mut it = src
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(src.len()));
    let start = it.nth(node.start).unwrap_or(src.len());
    let len = node.end.saturating_sub(node.start);
    let end = if len == 0 {
        start
    } else {
        it.nth(len - 1).unwrap_or(src.len())
    };
    &src[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_plain_text() {
        let src = "rules:\n  - id: a\n    when: message\n    at: 05:00\n    t: \"no\"\n    b: no\n";
        let docs = parse(src).unwrap();
        assert_eq!(docs.len(), 1);
        let top = docs[0].as_map().unwrap();
        assert_eq!(top[0].0.as_str(), Some("rules"));
        assert_eq!(top[0].0.pos, Pos { line: 1, col: 1 });
        let rule = &top[0].1.as_seq().unwrap()[0];
        let m = rule.as_map().unwrap();
        assert_eq!(m[0].0.pos, Pos { line: 2, col: 5 });
        assert_eq!(m[1].1.pos, Pos { line: 3, col: 11 });
        assert_eq!(m[2].1.as_str(), Some("05:00"));
        assert_eq!(m[3].1.as_str(), Some("no"));
        assert_eq!(m[4].1.as_str(), Some("no"));
    }

    #[test]
    fn block_scalars_nulls_and_aliases() {
        let src = "a: |\n  Chào bạn!\n  Xin chào\nb:\nc: &x [1, 2]\nd: *x\n";
        let docs = parse(src).unwrap();
        let m = docs[0].as_map().unwrap();
        assert_eq!(m[0].1.as_str(), Some("Chào bạn!\nXin chào\n"));
        assert!(m[1].1.is_null());
        assert_eq!(m[3].1.as_seq().unwrap().len(), 2);
        assert_eq!(source_of(src, &m[2].1), "[1, 2]");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        let err = parse("a: 1\n b: 2\n").unwrap_err();
        assert_eq!(err.pos.line, 2, "{err:?}");
    }

    #[test]
    fn empty_file_has_no_documents() {
        assert!(parse("").unwrap().is_empty());
        assert!(parse("# only a comment\n").unwrap().is_empty());
    }
}
