// Google's CSP Evaluator (npm csp_evaluator, pinned by tools/csp-evaluator/package-lock.json) on one CSP: reads the
// policy on stdin, prints its findings as a JSON array of {directive, value, severity, description}, as the
// evaluator's web page runs it (its default checks, CSP3), each finding once (the library reports each entry that
// 'strict-dynamic' makes ignored once per check that asks for the effective policy). Used by
// tests/e2e/test_scanner_scores.py.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(new URL("../../tools/csp-evaluator/", import.meta.url));
const { CspEvaluator } = require("csp_evaluator/dist/evaluator.js");
const { CspParser } = require("csp_evaluator/dist/parser.js");
const { Severity } = require("csp_evaluator/dist/finding.js");
const { Version } = require("csp_evaluator/dist/csp.js");

const policy = readFileSync(0, "utf8").trim();
const findings = new CspEvaluator(new CspParser(policy).csp, Version.CSP3).evaluate();
const unique = new Map(findings.map((f) => {
  const finding = { directive: f.directive, value: f.value ?? null, severity: Severity[f.severity],
    description: f.description };
  return [JSON.stringify(finding), finding];
}));
console.log(JSON.stringify([...unique.values()], null, 1));
