/* A worked example of the conformance suite from another language: ReLU, softmax cross-entropy and a
 * dense layer's forward and backward in plain C99, checked with `jacobian-nn compare`.
 *
 *   cc -std=c99 -O2 -o conformance conformance.c -lm
 *   jacobian-nn vectors --out suite
 *   ./conformance suite results
 *   jacobian-nn compare suite results --only relu --only softmax_cross_entropy --only dense
 *
 * It reads the suite's text form (suite.txt and <case>/<name>.txt: a "dtype" line, a "shape" line, then
 * one value per line as a C99 hex float, which strtod reads exactly) and writes every expected array of
 * the cases it implements to results/<case>/<name>.txt in the same form (printf "%a"), plus
 * results/results.txt, a copy of suite.txt that tells compare which suite the results answer.
 *
 * Built with -DPLANTED_SLIP, the softmax cross-entropy gradient forgets the 1/N of the batch mean: the
 * mistake compare is expected to name (missing_batch_scaling, factor N).
 *
 * Conventions (rows layout, CS231n): a batch is X (N, n), row k = sample k; W is (n_in, n_out);
 * Y = f(X W + b); a full Jacobian is J[i][j] = d out.flat[i] / d in.flat[j] in C order; relu'(0) = 0.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char dtype[16];
    int ndim;
    long shape[8];
    long size;
    double *v;
} Array;

static void die(const char *what, const char *path) {
    fprintf(stderr, "conformance: %s: %s\n", what, path);
    exit(1);
}

static Array read_array(const char *suite, const char *cas, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s.txt", suite, cas, name);
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open", path);
    Array a;
    memset(&a, 0, sizeof a);
    char line[256];
    if (!fgets(line, sizeof line, f) || sscanf(line, "dtype %15s", a.dtype) != 1) die("no dtype line", path);
    if (!fgets(line, sizeof line, f) || strncmp(line, "shape", 5) != 0) die("no shape line", path);
    a.size = 1;
    char *p = line + 5, *end;
    for (;;) {
        long d = strtol(p, &end, 10);
        if (end == p) break;
        if (a.ndim == 8 || d < 0) die("bad shape", path);
        a.shape[a.ndim++] = d;
        a.size *= d;
        p = end;
    }
    a.v = malloc(sizeof(double) * (size_t)(a.size > 0 ? a.size : 1));
    if (!a.v) die("out of memory", path);
    for (long i = 0; i < a.size; i++) {
        if (!fgets(line, sizeof line, f)) die("too few values", path);
        a.v[i] = strtod(line, NULL);
    }
    fclose(f);
    return a;
}

static Array new_array(const char *dtype, int ndim, long d0, long d1) {
    Array a;
    memset(&a, 0, sizeof a);
    snprintf(a.dtype, sizeof a.dtype, "%s", dtype);
    a.ndim = ndim;
    a.shape[0] = d0;
    a.shape[1] = d1;
    a.size = ndim == 0 ? 1 : (ndim == 1 ? d0 : d0 * d1);
    a.v = calloc((size_t)(a.size > 0 ? a.size : 1), sizeof(double));
    if (!a.v) die("out of memory", "new_array");
    return a;
}

static void make_dir(const char *path) {
    if (mkdir(path, 0777) != 0 && errno != EEXIST) die("cannot create folder", path);
}

static void write_array(const char *results, const char *cas, const char *name, Array a) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", results, cas);
    make_dir(path);
    snprintf(path, sizeof path, "%s/%s/%s.txt", results, cas, name);
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write", path);
    fprintf(f, "dtype %s\nshape", a.dtype);
    for (int i = 0; i < a.ndim; i++) fprintf(f, " %ld", a.shape[i]);
    fprintf(f, "\n");
    for (long i = 0; i < a.size; i++) fprintf(f, "%a\n", a.v[i]);
    fclose(f);
    free(a.v);
}

/* ReLU on Z (N, d): Y, the VJP dZ = G * relu'(Z), the block-diagonal Jacobian (N*d, N*d); relu'(0) = 0. */
static void relu_case(const char *suite, const char *results, const char *cas) {
    Array Z = read_array(suite, cas, "Z"), G = read_array(suite, cas, "G");
    long n = Z.size;
    Array Y = new_array(Z.dtype, 2, Z.shape[0], Z.shape[1]), dZ = new_array(Z.dtype, 2, Z.shape[0], Z.shape[1]);
    Array J = new_array(Z.dtype, 2, n, n);
    for (long i = 0; i < n; i++) {
        double slope = Z.v[i] > 0.0 ? 1.0 : 0.0;
        Y.v[i] = Z.v[i] > 0.0 ? Z.v[i] : 0.0;
        dZ.v[i] = G.v[i] * slope;
        J.v[i * n + i] = slope;
    }
    write_array(results, cas, "Y", Y);
    write_array(results, cas, "dZ", dZ);
    write_array(results, cas, "J", J);
    free(Z.v);
    free(G.v);
}

/* Softmax cross-entropy on logits Z (N, C), labels y (N,): mean loss, per-sample losses, dZ = (p - onehot) / N. */
static void softmax_ce_case(const char *suite, const char *results, const char *cas) {
    Array Z = read_array(suite, cas, "Z"), y = read_array(suite, cas, "y");
    long N = Z.shape[0], C = Z.shape[1];
    Array loss = new_array(Z.dtype, 0, 0, 0), losses = new_array(Z.dtype, 1, N, 0), dZ = new_array(Z.dtype, 2, N, C);
    double total = 0.0;
    for (long k = 0; k < N; k++) {
        const double *z = Z.v + k * C;
        double top = z[0], sum = 0.0;
        for (long c = 1; c < C; c++) top = z[c] > top ? z[c] : top;
        for (long c = 0; c < C; c++) sum += exp(z[c] - top);
        long label = (long)y.v[k];
        double lk = -(z[label] - top - log(sum));          /* -log softmax(z)[label], stable */
        losses.v[k] = lk;
        total += lk;
        for (long c = 0; c < C; c++) {
            double p = exp(z[c] - top) / sum;
#ifdef PLANTED_SLIP
            dZ.v[k * C + c] = p - (c == label ? 1.0 : 0.0);              /* the slip: no 1/N */
#else
            dZ.v[k * C + c] = (p - (c == label ? 1.0 : 0.0)) / (double)N;
#endif
        }
    }
    loss.v[0] = total / (double)N;
    write_array(results, cas, "loss", loss);
    write_array(results, cas, "losses", losses);
    write_array(results, cas, "dZ", dZ);
    free(Z.v);
    free(y.v);
}

static double act(const char *f, double z, double *slope) {
    if (strcmp(f, "relu") == 0) { *slope = z > 0.0 ? 1.0 : 0.0; return z > 0.0 ? z : 0.0; }
    if (strcmp(f, "tanh") == 0) { double t = tanh(z); *slope = 1.0 - t * t; return t; }
    if (strcmp(f, "sigmoid") == 0) { double s = 1.0 / (1.0 + exp(-z)); *slope = s * (1.0 - s); return s; }
    *slope = 1.0;   /* identity */
    return z;
}

/* Dense: X (N, n), W (n, m), b (m,), G (N, m): Y = f(X W + b), delta = G * f'(Z), dX = delta W^T,
 * dW = X^T delta, db = column sums of delta, and the full Jacobians of Y w.r.t. X, W and b. */
static void dense_case(const char *suite, const char *results, const char *cas, const char *f) {
    Array X = read_array(suite, cas, "X"), W = read_array(suite, cas, "W"), b = read_array(suite, cas, "b");
    Array G = read_array(suite, cas, "G");
    long N = X.shape[0], n = X.shape[1], m = W.shape[1];
    const char *dt = X.dtype;
    Array Y = new_array(dt, 2, N, m), dX = new_array(dt, 2, N, n), dW = new_array(dt, 2, n, m);
    Array db = new_array(dt, 1, m, 0), JX = new_array(dt, 2, N * m, N * n), JW = new_array(dt, 2, N * m, n * m);
    Array Jb = new_array(dt, 2, N * m, m);
    double *slope = malloc(sizeof(double) * (size_t)(N * m)), *delta = malloc(sizeof(double) * (size_t)(N * m));
    if (!slope || !delta) die("out of memory", cas);
    for (long k = 0; k < N; k++)
        for (long i = 0; i < m; i++) {
            double z = b.v[i];
            for (long j = 0; j < n; j++) z += X.v[k * n + j] * W.v[j * m + i];
            Y.v[k * m + i] = act(f, z, &slope[k * m + i]);
            delta[k * m + i] = G.v[k * m + i] * slope[k * m + i];
        }
    for (long k = 0; k < N; k++)
        for (long i = 0; i < m; i++) {
            long r = k * m + i;
            db.v[i] += delta[r];
            Jb.v[r * m + i] = slope[r];
            for (long j = 0; j < n; j++) {
                dX.v[k * n + j] += delta[r] * W.v[j * m + i];
                dW.v[j * m + i] += X.v[k * n + j] * delta[r];
                JX.v[r * (N * n) + k * n + j] = slope[r] * W.v[j * m + i];
                JW.v[r * (n * m) + j * m + i] = slope[r] * X.v[k * n + j];
            }
        }
    write_array(results, cas, "Y", Y);
    write_array(results, cas, "dX", dX);
    write_array(results, cas, "dW", dW);
    write_array(results, cas, "db", db);
    write_array(results, cas, "J_X", JX);
    write_array(results, cas, "J_W", JW);
    write_array(results, cas, "J_b", Jb);
    free(slope);
    free(delta);
    free(X.v);
    free(W.v);
    free(b.v);
    free(G.v);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SUITE RESULTS\n", argv[0]);
        return 2;
    }
    const char *suite = argv[1], *results = argv[2];
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/suite.txt", suite);
    FILE *in = fopen(path, "r");
    if (!in) die("cannot open", path);
    make_dir(results);
    snprintf(path, sizeof path, "%s/results.txt", results);
    FILE *out = fopen(path, "w");
    if (!out) die("cannot write", path);
    while (fgets(line, sizeof line, in)) {       /* results.txt: a copy of suite.txt (version, layout, hash) */
        if (strcmp(line, "layout rows\n") != 0 && strncmp(line, "layout ", 7) == 0)
            die("this example computes in the rows layout; write the suite with --layout rows", suite);
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
    static const char *relu_cases[] = {"relu-random-float64", "relu-random-float32", "relu-kink-float64"};
    static const char *sce_cases[] = {"softmax_cross_entropy-random-float64", "softmax_cross_entropy-random-float32",
                                      "softmax_cross_entropy-spread1000-float64"};
    static const char *dense_cases[][2] = {{"dense_tanh-random-float64", "tanh"}, {"dense_tanh-random-float32", "tanh"},
                                           {"dense_identity-square-float64", "identity"},
                                           {"dense_sigmoid-random-float64", "sigmoid"},
                                           {"dense_relu-kink-float64", "relu"}};
    for (size_t i = 0; i < sizeof relu_cases / sizeof *relu_cases; i++) relu_case(suite, results, relu_cases[i]);
    for (size_t i = 0; i < sizeof sce_cases / sizeof *sce_cases; i++) softmax_ce_case(suite, results, sce_cases[i]);
    for (size_t i = 0; i < sizeof dense_cases / sizeof *dense_cases; i++)
        dense_case(suite, results, dense_cases[i][0], dense_cases[i][1]);
    printf("wrote %s\n", results);
    return 0;
}
