// The same worked example as conformance.c, in JavaScript (Node 18 or later, no package): it reads the
// suite's JSON form and writes JSON results, nested lists of numbers (JSON.stringify writes the shortest
// decimal that reads back to the same double, as the suite does).
//
//   jacobian-nn vectors --out suite
//   node examples/conformance/conformance.mjs suite results-js
//   jacobian-nn compare suite results-js --only relu --only softmax_cross_entropy --only dense
//
// Conventions (rows layout, CS231n): X (N, n), W (n_in, n_out), Y = f(X W + b); relu'(0) = 0; a full
// Jacobian is J[i][j] = d out.flat[i] / d in.flat[j]. The results header is a copy of suite.txt.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [suite, results] = process.argv.slice(2);
if (!suite || !results) {
  console.error("usage: node conformance.mjs SUITE RESULTS");
  process.exit(2);
}
const header = readFileSync(join(suite, "suite.txt"), "utf8");
if (!header.includes("\nlayout rows\n")) throw new Error("this example computes in the rows layout");
mkdirSync(results, { recursive: true });
copyFileSync(join(suite, "suite.txt"), join(results, "results.txt"));

const read = (c, name) => JSON.parse(readFileSync(join(suite, c, `${name}.json`), "utf8")).data;
const write = (c, name, data) => {
  mkdirSync(join(results, c), { recursive: true });
  writeFileSync(join(results, c, `${name}.json`), JSON.stringify(data));
};
const zeros = (r, c) => Array.from({ length: r }, () => new Array(c).fill(0));

const ACT = {
  relu: (z) => [z > 0 ? z : 0, z > 0 ? 1 : 0],
  tanh: (z) => { const t = Math.tanh(z); return [t, 1 - t * t]; },
  sigmoid: (z) => { const s = 1 / (1 + Math.exp(-z)); return [s, s * (1 - s)]; },
  identity: (z) => [z, 1],
};

for (const c of ["relu-random-float64", "relu-random-float32", "relu-kink-float64"]) {
  const Z = read(c, "Z"), G = read(c, "G");
  const N = Z.length, d = Z[0].length, J = zeros(N * d, N * d);
  Z.forEach((row, k) => row.forEach((z, i) => { J[k * d + i][k * d + i] = ACT.relu(z)[1]; }));
  write(c, "Y", Z.map((row) => row.map((z) => ACT.relu(z)[0])));
  write(c, "dZ", Z.map((row, k) => row.map((z, i) => G[k][i] * ACT.relu(z)[1])));
  write(c, "J", J);
}

for (const c of ["softmax_cross_entropy-random-float64", "softmax_cross_entropy-random-float32",
                 "softmax_cross_entropy-spread1000-float64"]) {
  const Z = read(c, "Z"), y = read(c, "y"), N = Z.length;
  const losses = [], dZ = [];
  for (const [k, z] of Z.entries()) {
    const top = Math.max(...z), sum = z.reduce((s, v) => s + Math.exp(v - top), 0);
    losses.push(-(z[y[k]] - top - Math.log(sum)));                 // -log softmax(z)[y], stable
    dZ.push(z.map((v, i) => (Math.exp(v - top) / sum - (i === y[k] ? 1 : 0)) / N));
  }
  write(c, "loss", losses.reduce((s, v) => s + v, 0) / N);
  write(c, "losses", losses);
  write(c, "dZ", dZ);
}

for (const [c, f] of [["dense_tanh-random-float64", "tanh"], ["dense_tanh-random-float32", "tanh"],
                      ["dense_identity-square-float64", "identity"], ["dense_sigmoid-random-float64", "sigmoid"],
                      ["dense_relu-kink-float64", "relu"]]) {
  const X = read(c, "X"), W = read(c, "W"), b = read(c, "b"), G = read(c, "G");
  const N = X.length, n = W.length, m = b.length;
  const Y = zeros(N, m), slope = zeros(N, m), dX = zeros(N, n), dW = zeros(n, m), db = new Array(m).fill(0);
  const JX = zeros(N * m, N * n), JW = zeros(N * m, n * m), Jb = zeros(N * m, m);
  for (let k = 0; k < N; k++) {
    for (let i = 0; i < m; i++) {
      let z = b[i];
      for (let j = 0; j < n; j++) z += X[k][j] * W[j][i];
      [Y[k][i], slope[k][i]] = ACT[f](z);
      const delta = G[k][i] * slope[k][i], r = k * m + i;
      db[i] += delta;
      Jb[r][i] = slope[k][i];
      for (let j = 0; j < n; j++) {
        dX[k][j] += delta * W[j][i];
        dW[j][i] += X[k][j] * delta;
        JX[r][k * n + j] = slope[k][i] * W[j][i];
        JW[r][j * m + i] = slope[k][i] * X[k][j];
      }
    }
  }
  Object.entries({ Y, dX, dW, db, J_X: JX, J_W: JW, J_b: Jb }).forEach(([name, v]) => write(c, name, v));
}
console.log(`wrote ${results}`);
