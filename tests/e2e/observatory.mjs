// The MDN HTTP Observatory's scanner (npm @mdn/mdn-http-observatory, pinned by tools/observatory/package-lock.json)
// on one site of this machine: `node observatory.mjs HOST HTTPS_PORT HTTP_PORT` prints {score, grade, tests}, each
// test's {result, scoreModifier, pass}. The library's scan() takes a bare hostname (ports 443 and 80); this runs
// its retriever on the given ports and then its tests and grading as scan() does (src/scanner/index.js, 1.4.8).
// Used by tests/e2e/test_scanner_scores.py, with HTTP_PORT a port nothing listens on: "no http, no redirect".
const library = (module) => import(new URL(`../../tools/observatory/node_modules/@mdn/mdn-http-observatory/src/${module}`,
  import.meta.url));
const { retrieve } = await library("retriever/retriever.js");
const { ALL_TESTS } = await library("constants.js");
const { MINIMUM_SCORE_FOR_EXTRA_CREDIT } = await library("grader/charts.js");
const { getGradeForScore, getScoreModifier } = await library("grader/grader.js");

const [hostname, httpsPort, httpPort] = process.argv.slice(2);
const requests = await retrieve(hostname, { httpsPort, httpPort });
if (!requests.responses.auto) {
  console.error(`${hostname}:${httpsPort}: the Observatory could not connect`);
  process.exit(1);
}
let withExtraCredit = 100;
let uncurved = 100;
const tests = {};
for (const test of ALL_TESTS) {
  const output = test(requests);
  const scoreModifier = output.result ? getScoreModifier(output.result) : 0;
  withExtraCredit += scoreModifier;
  uncurved += Math.min(scoreModifier, 0);
  tests[output.constructor.name] = { result: output.result, scoreModifier, pass: output.pass };
}
const { score, grade } = getGradeForScore(uncurved >= MINIMUM_SCORE_FOR_EXTRA_CREDIT ? withExtraCredit : uncurved);
console.log(JSON.stringify({ score, grade, tests }, null, 1));
