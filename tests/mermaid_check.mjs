// Parse Mermaid text with Mermaid's own parser (the `mermaid` npm package, under jsdom).
// stdin: a JSON list of diagram texts. stdout: a JSON list, one result per text:
//   {"ok": true, "states": {id: [descriptions...]}, "relations": [[from, to, title], ...],
//    "parents": {id: composite id or null}, "regions": {composite id: number of `--` regions}}
//   {"ok": false, "error": "Parse error on line ..."}
// Labels are returned as Mermaid stores them (entity codes encoded as `ﬂ°°59¶ß`).
// The packages are looked up in $STATEMACHINES_NPM_DIR (see .ci/run).
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = process.env.STATEMACHINES_NPM_DIR;
const req = createRequire(path.join(dir, 'package.json'));
const { JSDOM } = req('jsdom');
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window; // mermaid's DOMPurify needs a window even to parse
globalThis.document = dom.window.document;
const { default: mermaid } = await import(pathToFileURL(req.resolve('mermaid')).href);
mermaid.initialize({ startOnLoad: false });

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const text of JSON.parse(input)) {
  try {
    await mermaid.parse(text);
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    const states = {};
    for (const [id, st] of diagram.db.getStates()) states[id] = st.descriptions ?? [];
    const relations = diagram.db.getRelations().map((r) => [r.id1, r.id2, r.relationTitle ?? '']);
    const parents = {};
    const regions = {};
    const walk = (doc, parent) => {
      for (const stmt of doc ?? []) {
        if (stmt.stmt !== 'state') continue;
        if (stmt.type === 'divider') {
          regions[parent] = (regions[parent] ?? 0) + 1;
          walk(stmt.doc, parent);
          continue;
        }
        if (!(stmt.id in parents)) parents[stmt.id] = parent;
        walk(stmt.doc, stmt.id);
      }
    };
    walk(diagram.db.getRootDocV2().doc, null);
    results.push({ ok: true, states, relations, parents, regions });
  } catch (err) {
    results.push({ ok: false, error: String(err?.message ?? err) });
  }
}
process.stdout.write(JSON.stringify(results));
