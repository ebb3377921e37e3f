// The snippets quoted in docs/deploy/use-with-your-app.md are the tested files: the Vite
// and Next.js configurations word for word (comments aside), the nginx and sessiongate
// excerpts line by line, in order. Silent on success.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

const dir = new URL("../../docs/deploy/", import.meta.url);
const read = (name) => readFileSync(new URL(name, dir), "utf8");
const doc = read("use-with-your-app.md");

// The first fenced block of LANG after the line that links to FILE.
function quoted(file, lang) {
  const at = doc.indexOf(`](${file})`);
  assert.ok(at >= 0, `use-with-your-app.md links ${file}`);
  const start = doc.indexOf("```" + lang + "\n", at);
  assert.ok(start >= 0, `a ${lang} block after the link to ${file}`);
  const body = doc.slice(start + lang.length + 4);
  return body.slice(0, body.indexOf("```"));
}

// Code lines without comments and blank lines, trimmed.
function code(text, comment) {
  return text
    .split("\n")
    .map((l) => l.replace(new RegExp(`(^|\\s)${comment}.*$`), "").trim())
    .filter((l) => l !== "");
}

// Word for word.
for (const file of ["vite.config.js", "next.config.js"]) {
  assert.deepEqual(code(quoted(file, "js"), "//"), code(read(file), "//"), `${file} as quoted`);
}

// Every quoted line is in the file, in the same order.
function inOrder(file, lang, comment) {
  const lines = code(read(file), comment);
  let i = 0;
  for (const line of code(quoted(file, lang), comment)) {
    const found = lines.indexOf(line, i);
    assert.ok(found >= 0, `${file}: the quoted line \`${line}\` is not in the file (in this order)`);
    i = found + 1;
  }
}
inOrder("nginx.conf", "nginx", "#");
inOrder("behind-nginx.toml", "toml", "#");
