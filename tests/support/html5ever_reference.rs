//! The reference for the inline-script scan: html5ever's tokenizer and tree builder (a full WHATWG parser, with
//! scripting on) driven by a minimal tree sink that records which HTML script elements the parser prepares
//! (the tokenizer stops at each one's end tag), whether each is connected to the document (not in template
//! contents) and not already started, and its text as the parser built it. The script-type rules are applied
//! here from the decoded attributes, written from the HTML standard's "prepare the script element" and
//! Chromium's ScriptLoader, independently of the engine's code.
//!
//! Shared by tests/inline_script_scan_differential.rs and the fuzz target (included by path).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use html5ever::tendril::StrTendril;
use html5ever::tokenizer::{BufferQueue, Tokenizer, TokenizerOpts};
use html5ever::tree_builder::{
    ElemName, ElementFlags, NodeOrText, QuirksMode, TreeBuilder, TreeSink,
};
use html5ever::{ns, Attribute, LocalName, Namespace, QualName, TokenizerResult};
use sha2::{Digest, Sha256};

/// What the reference parser says runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The `'sha256-...'` sources of the inline scripts that run, in order, without repeats.
    Hashes(Vec<String>),
    /// The document has an SVG `<script>` element (it runs too; the scan refuses such documents).
    SvgScript,
}

#[derive(Debug, Default)]
struct Node {
    name: Option<QualName>,
    parent: Option<usize>,
    /// Text appended directly to this node (a script's children are only text).
    text: String,
    attrs: Vec<(String, String)>,
    /// This node is a template's contents (a fragment never connected to the document).
    template_contents: bool,
    annotation_xml_integration_point: bool,
    already_started: bool,
}

#[derive(Default)]
struct Sink {
    nodes: RefCell<Vec<Node>>,
    svg_script: Cell<bool>,
}

#[derive(Debug)]
struct Name(Namespace, LocalName);

impl ElemName for Name {
    fn ns(&self) -> &Namespace {
        &self.0
    }
    fn local_name(&self) -> &LocalName {
        &self.1
    }
}

impl Sink {
    fn add(&self, node: Node) -> usize {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(node);
        nodes.len() - 1
    }

    fn parent_of(&self, node: usize) -> Option<usize> {
        self.nodes.borrow()[node].parent
    }

    fn connected(&self, mut node: usize) -> bool {
        let nodes = self.nodes.borrow();
        loop {
            if node == 0 {
                return true;
            }
            if nodes[node].template_contents {
                return false;
            }
            match nodes[node].parent {
                Some(parent) => node = parent,
                None => return false,
            }
        }
    }
}

impl TreeSink for Sink {
    type Handle = usize;
    type Output = ();
    type ElemName<'a> = Name;

    fn finish(self) {}
    fn parse_error(&self, _: Cow<'static, str>) {}
    fn get_document(&self) -> usize {
        0
    }

    fn elem_name(&self, target: &usize) -> Name {
        let nodes = self.nodes.borrow();
        let name = nodes[*target].name.as_ref().expect("an element");
        Name(name.ns.clone(), name.local.clone())
    }

    fn create_element(&self, name: QualName, attrs: Vec<Attribute>, flags: ElementFlags) -> usize {
        if name.ns == ns!(svg) && &*name.local == "script" {
            self.svg_script.set(true);
        }
        let attrs = attrs
            .into_iter()
            .map(|a| (a.name.local.to_string(), a.value.to_string()))
            .collect();
        let element = self.add(Node {
            name: Some(name),
            attrs,
            annotation_xml_integration_point: flags.mathml_annotation_xml_integration_point,
            ..Node::default()
        });
        if flags.template {
            // The contents are always the next node.
            self.add(Node {
                template_contents: true,
                ..Node::default()
            });
        }
        element
    }

    fn create_comment(&self, _: StrTendril) -> usize {
        self.add(Node::default())
    }

    fn create_pi(&self, _: StrTendril, _: StrTendril) -> usize {
        self.add(Node::default())
    }

    fn append(&self, parent: &usize, child: NodeOrText<usize>) {
        let mut nodes = self.nodes.borrow_mut();
        match child {
            NodeOrText::AppendNode(node) => nodes[node].parent = Some(*parent),
            NodeOrText::AppendText(text) => nodes[*parent].text.push_str(&text),
        }
    }

    fn append_based_on_parent_node(&self, element: &usize, prev: &usize, child: NodeOrText<usize>) {
        if self.parent_of(*element).is_some() {
            self.append_before_sibling(element, child);
        } else {
            self.append(prev, child);
        }
    }

    fn append_doctype_to_document(&self, _: StrTendril, _: StrTendril, _: StrTendril) {}

    fn mark_script_already_started(&self, node: &usize) {
        self.nodes.borrow_mut()[*node].already_started = true;
    }

    fn get_template_contents(&self, target: &usize) -> usize {
        target + 1
    }

    fn same_node(&self, x: &usize, y: &usize) -> bool {
        x == y
    }

    fn set_quirks_mode(&self, _: QuirksMode) {}

    fn append_before_sibling(&self, sibling: &usize, child: NodeOrText<usize>) {
        if let Some(parent) = self.parent_of(*sibling) {
            self.append(&parent, child);
        }
    }

    fn add_attrs_if_missing(&self, _: &usize, _: Vec<Attribute>) {}

    fn remove_from_parent(&self, target: &usize) {
        self.nodes.borrow_mut()[*target].parent = None;
    }

    fn reparent_children(&self, node: &usize, new_parent: &usize) {
        for n in self.nodes.borrow_mut().iter_mut() {
            if n.parent == Some(*node) {
                n.parent = Some(*new_parent);
            }
        }
    }

    fn is_mathml_annotation_xml_integration_point(&self, handle: &usize) -> bool {
        self.nodes.borrow()[*handle].annotation_xml_integration_point
    }
}

/// Whether a prepared, connected HTML script element with these attributes and text runs (and is checked
/// against script-src as inline script).
fn runs(attrs: &[(String, String)], text: &str) -> bool {
    let attr = |name: &str| {
        attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if text.is_empty() || attr("src").is_some() {
        return false;
    }
    let javascript = |t: &str| {
        let t = t.to_ascii_lowercase();
        matches!(
            t.as_str(),
            "application/ecmascript"
                | "application/javascript"
                | "application/x-ecmascript"
                | "application/x-javascript"
                | "text/ecmascript"
                | "text/javascript"
                | "text/jscript"
                | "text/livescript"
                | "text/x-ecmascript"
                | "text/x-javascript"
        ) || t
            .strip_prefix("text/javascript1.")
            .is_some_and(|minor| matches!(minor, "0" | "1" | "2" | "3" | "4" | "5"))
    };
    let strip = |s: &str| s.trim_matches(['\t', '\n', '\x0c', '\r', ' ']).to_string();
    // "Prepare the script element": a type attribute's value is stripped of white space, `"text/" + language`
    // is not (Chromium agrees: `language="javascript "` does not run).
    let classic = match (attr("type"), attr("language")) {
        (Some(t), _) if !t.is_empty() => javascript(&strip(t)),
        (None, Some(l)) if !l.is_empty() => javascript(&format!("text/{l}")),
        _ => true,
    };
    // Chromium matches these without stripping; the standard strips first: both must agree.
    let other = ["module", "importmap", "speculationrules"]
        .iter()
        .any(|k| attr("type").is_some_and(|t| t.eq_ignore_ascii_case(k)));
    if !classic {
        return other;
    }
    if attr("nomodule").is_some() {
        return false;
    }
    match (attr("event"), attr("for")) {
        (Some(event), Some(for_)) => {
            strip(for_).eq_ignore_ascii_case("window")
                && ["onload", "onload()"]
                    .iter()
                    .any(|e| strip(event).eq_ignore_ascii_case(e))
        }
        _ => true,
    }
}

/// The inline scripts html5ever's parse of `html` runs, as CSP sources.
pub fn reference(html: &str) -> Reference {
    let tokenizer = Tokenizer::new(
        TreeBuilder::new(Sink::default(), Default::default()),
        TokenizerOpts::default(),
    );
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let mut prepared = Vec::new();
    loop {
        match tokenizer.feed(&input) {
            TokenizerResult::Done => break,
            TokenizerResult::Script(node) => prepared.push(node),
            TokenizerResult::EncodingIndicator(_) => {}
        }
    }
    tokenizer.end();
    let sink = &tokenizer.sink.sink;
    if sink.svg_script.get() {
        return Reference::SvgScript;
    }
    let mut hashes: Vec<String> = Vec::new();
    for node in prepared {
        let nodes = sink.nodes.borrow();
        let script = &nodes[node];
        let html_script = script
            .name
            .as_ref()
            .is_some_and(|n| n.ns == ns!(html) && &*n.local == "script");
        if !html_script || script.already_started {
            continue;
        }
        let (attrs, text) = (script.attrs.clone(), script.text.clone());
        drop(nodes);
        if sink.connected(node) && runs(&attrs, &text) {
            let source = format!(
                "'sha256-{}'",
                STANDARD.encode(Sha256::digest(text.as_bytes()))
            );
            if !hashes.contains(&source) {
                hashes.push(source);
            }
        }
    }
    Reference::Hashes(hashes)
}
