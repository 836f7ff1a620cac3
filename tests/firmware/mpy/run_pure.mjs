// Run a Python script on real MicroPython (WebAssembly port) with firmware/bedside mounted
// at /lib/bedside. Usage: node run_pure.mjs <bedside dir> <script.py>; prints its output.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const [src, script] = process.argv.slice(2);
const out = [];
const mp = await loadMicroPython({ stdout: (l) => out.push(l), stderr: (l) => out.push("ERR " + l) });
mp.FS.mkdirTree("/lib/bedside");
for (const f of fs.readdirSync(src)) {
  if (f.endsWith(".py")) mp.FS.writeFile("/lib/bedside/" + f, fs.readFileSync(path.join(src, f)));
}
let code = 0;
try {
  mp.runPython("import sys\nsys.path.append('/lib')\n" + fs.readFileSync(script, "utf8"));
} catch (e) {
  out.push("EXC " + e);
  code = 1;
}
process.stdout.write(out.join("\n") + "\n");
process.exit(code);
