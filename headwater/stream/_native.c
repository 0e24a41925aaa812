/* The stream's per-row hot paths in C: gathering `next()` rows column by column, the index of
 * an integer primary key, and the CSV change-stream text.
 *
 * Each has a pure-Python twin (buffer.py, state.py, sinks.py) that is the reference: the tests
 * run both and compare them. This file only makes the common cases fast; whatever it does not
 * handle (a value of another type, a missing column, a default) it hands back to Python.
 *
 *   Rows       next(**values) appends each value to its column's buffer (int64, float64,
 *              bool, UTF-8 text, bytes, each with a validity byte); take() hands the rows
 *              over as Arrow buffers (or, for a few rows, as Python lists).
 *   IntIndex   int64 key -> row position, an open-addressing hash table.
 *   csv_lines  Arrow columns -> Pathway's CSV change-stream lines, without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_INT = 0, K_FLOAT = 1, K_STR = 2, K_BOOL = 3, K_BYTES = 4 };

/* -- a growable byte buffer ---------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline void buf_put(Buf *b, const void *src, size_t n) {
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void buf_free(Buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ===========================================================================================
 * Rows: the producer's buffer
 * ========================================================================================= */

typedef struct {
    PyObject *name; /* interned: a call site's keyword names are usually the same objects */
    int kind;
    int nullable;
    Buf values;  /* int64 / double / one byte per bool / UTF-8 or bytes data */
    Buf offsets; /* int32, str and bytes only (n + 1 entries once a row is there) */
    Buf valid;   /* one byte per row */
    Py_ssize_t nulls;
} Col;

typedef struct {
    PyObject_HEAD
    Py_ssize_t ncols;
    Col *cols;
    Py_ssize_t rows;
    Buf ops; /* int8 per row: +1 upsert, -1 delete */
    Py_ssize_t chunk_rows;
    PyObject *check;  /* check(values: dict) -> list | None: Python's checks, defaults, errors */
    PyObject *misfit; /* misfit(values, column, value) -> None: a checked value C cannot store */
    PyObject *full;   /* full(): chunk_rows rows are waiting */
    PyObject *first;  /* first(): the first row after a hand-over (wakes the autocommit) */
    PyObject *divert; /* divert(values): every row goes here instead (closed, skipping...) */
} Rows;

typedef union {
    int64_t i;
    double f;
    struct {
        const char *p;
        Py_ssize_t n;
    } s;
} Value;

/* A value as column `c` stores it: 1 fits (set *v; *null for None), 0 does not fit as is. */
static int fits(const Col *c, PyObject *o, Value *v, int *null, int any_null) {
    *null = 0;
    if (o == Py_None) {
        if (!(c->nullable || any_null)) return 0;
        *null = 1;
        return 1;
    }
    switch (c->kind) {
    case K_INT: {
        if (!PyLong_CheckExact(o)) return 0;
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow) return 0;
        v->i = x;
        return 1;
    }
    case K_FLOAT:
        if (!PyFloat_CheckExact(o)) return 0;
        v->f = PyFloat_AS_DOUBLE(o);
        return 1;
    case K_BOOL:
        if (o == Py_True) v->i = 1;
        else if (o == Py_False) v->i = 0;
        else return 0;
        return 1;
    case K_STR:
        if (!PyUnicode_CheckExact(o)) return 0;
        v->s.p = PyUnicode_AsUTF8AndSize(o, &v->s.n);
        if (!v->s.p) { /* a lone surrogate: not UTF-8 */
            PyErr_Clear();
            return 0;
        }
        return 1;
    case K_BYTES:
        if (!PyBytes_CheckExact(o)) return 0;
        v->s.p = PyBytes_AS_STRING(o);
        v->s.n = PyBytes_GET_SIZE(o);
        return 1;
    }
    return 0;
}

static int col_reserve(Col *c, Py_ssize_t n_text) {
    if (buf_reserve(&c->valid, 1) < 0) return -1;
    switch (c->kind) {
    case K_INT:
    case K_FLOAT:
        return buf_reserve(&c->values, 8);
    case K_BOOL:
        return buf_reserve(&c->values, 1);
    default:
        if (buf_reserve(&c->offsets, 8) < 0) return -1;
        return buf_reserve(&c->values, (size_t)n_text);
    }
}

static void col_append(Col *c, const Value *v, int null) {
    char ok = !null;
    buf_put(&c->valid, &ok, 1);
    c->nulls += null;
    switch (c->kind) {
    case K_INT:
        buf_put(&c->values, null ? &(int64_t){0} : &v->i, 8);
        break;
    case K_FLOAT:
        buf_put(&c->values, null ? &(double){0} : &v->f, 8);
        break;
    case K_BOOL: {
        char b = null ? 0 : (char)v->i;
        buf_put(&c->values, &b, 1);
        break;
    }
    default: {
        if (c->offsets.len == 0) buf_put(&c->offsets, &(int32_t){0}, 4);
        if (!null) buf_put(&c->values, v->s.p, (size_t)v->s.n);
        int32_t end = (int32_t)c->values.len;
        buf_put(&c->offsets, &end, 4);
    }
    }
}

/* Append one row of `values` (in column order), all of which fit. */
static int rows_append(Rows *self, Value *vals, int *nulls, char op) {
    for (Py_ssize_t j = 0; j < self->ncols; j++) {
        Py_ssize_t text = (self->cols[j].kind == K_STR || self->cols[j].kind == K_BYTES)
                              ? vals[j].s.n
                              : 0;
        if (nulls[j]) text = 0;
        if (self->cols[j].values.len + (size_t)text > INT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "more than 2 GiB of text in one chunk");
            return -1;
        }
        if (col_reserve(&self->cols[j], text) < 0 || buf_reserve(&self->ops, 1) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    for (Py_ssize_t j = 0; j < self->ncols; j++) col_append(&self->cols[j], &vals[j], nulls[j]);
    buf_put(&self->ops, &op, 1);
    self->rows++;
    return 0;
}

/* After a row: hand a full chunk over, or wake the consumer for the first row. */
static PyObject *rows_after(Rows *self) {
    PyObject *hook = NULL;
    if (self->rows >= self->chunk_rows) hook = self->full;
    else if (self->rows == 1) hook = self->first;
    if (hook && hook != Py_None) return PyObject_CallNoArgs(hook);
    Py_RETURN_NONE;
}

#define MAX_STACK_COLS 64

/* A checked row from Python (a list in column order, see check()) appended with `op`; a
 * value that still does not fit (an int beyond int64, a str that is not UTF-8) goes to
 * misfit(), which raises or drops the row. Returns 1 appended, 0 dropped, -1 error. */
static int rows_push(Rows *self, PyObject *values, PyObject *row, char op, int any_null) {
    Value vals[MAX_STACK_COLS];
    int nulls[MAX_STACK_COLS];
    if (!PyList_CheckExact(row) || PyList_GET_SIZE(row) != self->ncols) {
        PyErr_SetString(PyExc_TypeError, "a checked row must be a list with one value per column");
        return -1;
    }
    for (Py_ssize_t j = 0; j < self->ncols; j++) {
        PyObject *o = PyList_GET_ITEM(row, j);
        if (!fits(&self->cols[j], o, &vals[j], &nulls[j], any_null)) {
            PyObject *r = PyObject_CallFunctionObjArgs(
                self->misfit, values, self->cols[j].name, o, NULL);
            if (!r) return -1;
            Py_DECREF(r);
            return 0;
        }
    }
    return rows_append(self, vals, nulls, op) < 0 ? -1 : 1;
}

static PyObject *kwargs_dict(PyObject *const *args, PyObject *kwnames) {
    PyObject *d = PyDict_New();
    if (!d || !kwnames) return d;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++)
        if (PyDict_SetItem(d, PyTuple_GET_ITEM(kwnames, i), args[i]) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    return d;
}

/* The slow path: Python checks the row (and raises, skips or dead-letters a bad one). */
static PyObject *rows_slow(Rows *self, PyObject *values) {
    PyObject *row = PyObject_CallOneArg(self->check, values);
    if (!row) return NULL;
    int done = row == Py_None ? 0 : rows_push(self, values, row, 1, 0);
    Py_DECREF(row);
    if (done < 0) return NULL;
    if (done == 0) Py_RETURN_NONE;
    return rows_after(self);
}

static PyObject *rows_divert(Rows *self, PyObject *values) {
    PyObject *divert = self->divert;
    Py_INCREF(divert); /* divert() may replace itself */
    PyObject *r = PyObject_CallOneArg(divert, values);
    Py_DECREF(divert);
    return r;
}

/* The fast path: a value for every column, each of a type C stores as is. Returns 1 when
 * the row was appended, 0 when it needs Python's checks, -1 on an error. */
static int rows_fast(Rows *self, PyObject *const *names, PyObject *const *values, Py_ssize_t n) {
    if (self->divert != NULL || n != self->ncols) return 0;
    Value vals[MAX_STACK_COLS];
    int nulls[MAX_STACK_COLS];
    char seen[MAX_STACK_COLS] = {0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = names[i];
        Py_ssize_t j = i;
        if (self->cols[i].name != name) { /* not in schema order: look it up */
            if (!PyUnicode_Check(name)) return 0;
            for (j = 0; j < self->ncols; j++)
                if (self->cols[j].name == name || PyUnicode_Compare(self->cols[j].name, name) == 0)
                    break;
        }
        if (j == self->ncols || seen[j]) return 0;
        seen[j] = 1;
        if (!fits(&self->cols[j], values[i], &vals[j], &nulls[j], 0)) return 0;
    }
    return rows_append(self, vals, nulls, 1) < 0 ? -1 : 1;
}

/* next(**values): the per-row call. */
static PyObject *Rows_next(Rows *self, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf)) {
        PyErr_SetString(PyExc_TypeError,
                        "next() takes keyword arguments only, one per column: next(key=1, ...)");
        return NULL;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int done = nkw ? rows_fast(self, &PyTuple_GET_ITEM(kwnames, 0), args, nkw) : 0;
    if (done < 0) return NULL;
    if (done) return rows_after(self);
    PyObject *values = kwargs_dict(args, kwnames);
    if (!values) return NULL;
    PyObject *r = self->divert ? rows_divert(self, values) : rows_slow(self, values);
    Py_DECREF(values);
    return r;
}

/* add(values: dict): next() with a dict (next_json, next_str...). */
static PyObject *Rows_add(Rows *self, PyObject *values) {
    if (!PyDict_Check(values)) {
        PyErr_SetString(PyExc_TypeError, "add() takes a dict of column -> value");
        return NULL;
    }
    if (self->divert) return rows_divert(self, values);
    Py_ssize_t n = PyDict_GET_SIZE(values);
    if (n == self->ncols) {
        PyObject *names[MAX_STACK_COLS], *vals[MAX_STACK_COLS], *key, *value;
        Py_ssize_t at = 0, i = 0;
        while (PyDict_Next(values, &at, &key, &value)) {
            names[i] = key;
            vals[i++] = value;
        }
        int done = rows_fast(self, names, vals, n);
        if (done < 0) return NULL;
        if (done) return rows_after(self);
    }
    return rows_slow(self, values);
}

/* push(row: list, op): a row checked by Python (a delete: the key, None elsewhere). */
static PyObject *Rows_push(Rows *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "push(row, op)");
        return NULL;
    }
    long op = PyLong_AsLong(args[1]);
    if (op == -1 && PyErr_Occurred()) return NULL;
    PyObject *values = PyDict_New();
    if (!values) return NULL;
    int done = rows_push(self, values, args[0], (char)op, 1);
    Py_DECREF(values);
    if (done < 0) return NULL;
    if (done == 0) {
        PyErr_SetString(PyExc_ValueError, "push(): a value does not fit its column");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *bytes_of(const Buf *b) {
    return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->len);
}

/* Arrow's bitmap (LSB first) of one byte per row. */
static PyObject *bitmap_of(const Buf *bytes, Py_ssize_t n) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, (n + 7) / 8);
    if (!out) return NULL;
    unsigned char *bits = (unsigned char *)PyBytes_AS_STRING(out);
    memset(bits, 0, (size_t)(n + 7) / 8);
    for (Py_ssize_t i = 0; i < n; i++)
        if (bytes->data[i]) bits[i >> 3] |= (unsigned char)(1u << (i & 7));
    return out;
}

static PyObject *col_list(const Col *c, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    const int32_t *off = (const int32_t *)c->offsets.data;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o;
        if (!c->valid.data[i]) o = Py_NewRef(Py_None);
        else switch (c->kind) {
        case K_INT:
            o = PyLong_FromLongLong(((const int64_t *)c->values.data)[i]);
            break;
        case K_FLOAT:
            o = PyFloat_FromDouble(((const double *)c->values.data)[i]);
            break;
        case K_BOOL:
            o = PyBool_FromLong(c->values.data[i]);
            break;
        case K_STR:
            o = PyUnicode_DecodeUTF8(c->values.data + off[i], off[i + 1] - off[i], NULL);
            break;
        default:
            o = PyBytes_FromStringAndSize(c->values.data + off[i], off[i + 1] - off[i]);
        }
        if (!o) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, o);
    }
    return list;
}

static void rows_clear(Rows *self) {
    for (Py_ssize_t j = 0; j < self->ncols; j++) {
        Col *c = &self->cols[j];
        c->values.len = c->offsets.len = c->valid.len = 0;
        c->nulls = 0;
    }
    self->ops.len = 0;
    self->rows = 0;
}

/* take(lists: bool) -> (ops, columns): every row so far, and the buffer emptied.
 * lists: each column a list of Python values, ops a list of ints (a few rows).
 * Otherwise ops is bytes (int8) and each column a tuple (validity bitmap or None, data
 * bytes, offsets bytes or None), ready for pyarrow's Array.from_buffers. */
static PyObject *Rows_take(Rows *self, PyObject *lists) {
    int as_lists = PyObject_IsTrue(lists);
    if (as_lists < 0) return NULL;
    Py_ssize_t n = self->rows;
    PyObject *columns = PyList_New(self->ncols), *ops = NULL;
    if (!columns) return NULL;
    for (Py_ssize_t j = 0; j < self->ncols; j++) {
        Col *c = &self->cols[j];
        PyObject *col;
        if (as_lists) {
            col = col_list(c, n);
        } else {
            PyObject *valid = c->nulls ? bitmap_of(&c->valid, n) : Py_NewRef(Py_None);
            PyObject *data = c->kind == K_BOOL ? bitmap_of(&c->values, n) : bytes_of(&c->values);
            PyObject *offsets = NULL;
            if (c->kind == K_STR || c->kind == K_BYTES)
                offsets = n ? bytes_of(&c->offsets) : PyBytes_FromStringAndSize("\0\0\0\0", 4);
            else offsets = Py_NewRef(Py_None);
            col = (valid && data && offsets) ? PyTuple_Pack(3, valid, data, offsets) : NULL;
            Py_XDECREF(valid);
            Py_XDECREF(data);
            Py_XDECREF(offsets);
        }
        if (!col) goto fail;
        PyList_SET_ITEM(columns, j, col);
    }
    if (as_lists) {
        ops = PyList_New(n);
        if (!ops) goto fail;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *op = PyLong_FromLong(self->ops.data[i]);
            if (!op) goto fail;
            PyList_SET_ITEM(ops, i, op);
        }
    } else if (!(ops = bytes_of(&self->ops))) goto fail;
    rows_clear(self);
    PyObject *result = PyTuple_Pack(2, ops, columns);
    Py_DECREF(ops);
    Py_DECREF(columns);
    return result;
fail:
    Py_XDECREF(ops);
    Py_DECREF(columns);
    return NULL;
}

static PyObject *Rows_clear(Rows *self, PyObject *unused) {
    rows_clear(self);
    Py_RETURN_NONE;
}

static int Rows_init(Rows *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"columns", "chunk_rows", "check", "misfit", "full", "first", NULL};
    PyObject *columns, *check, *misfit, *full, *first;
    Py_ssize_t chunk_rows;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OnOOOO", kwlist, &columns, &chunk_rows, &check,
                                     &misfit, &full, &first))
        return -1;
    PyObject *seq = PySequence_Fast(columns, "columns: a sequence of (name, kind, nullable)");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n < 1 || n > MAX_STACK_COLS || self->cols) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "Rows takes 1 to 64 columns, once");
        return -1;
    }
    self->cols = calloc((size_t)n, sizeof(Col));
    if (!self->cols) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    self->ncols = n;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *name;
        int kind, nullable;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, j), "Uip", &name, &kind, &nullable) ||
            kind < K_INT || kind > K_BYTES) {
            Py_DECREF(seq);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "unknown column kind");
            return -1;
        }
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        self->cols[j].name = name;
        self->cols[j].kind = kind;
        self->cols[j].nullable = nullable;
    }
    Py_DECREF(seq);
    self->chunk_rows = chunk_rows;
    self->check = Py_NewRef(check);
    self->misfit = Py_NewRef(misfit);
    self->full = Py_NewRef(full);
    self->first = Py_NewRef(first);
    return 0;
}

static int Rows_traverse(Rows *self, visitproc visit, void *arg) {
    Py_VISIT(self->check);
    Py_VISIT(self->misfit);
    Py_VISIT(self->full);
    Py_VISIT(self->first);
    Py_VISIT(self->divert);
    return 0;
}

static int Rows_clear_refs(Rows *self) {
    Py_CLEAR(self->check);
    Py_CLEAR(self->misfit);
    Py_CLEAR(self->full);
    Py_CLEAR(self->first);
    Py_CLEAR(self->divert);
    return 0;
}

static void Rows_dealloc(Rows *self) {
    PyObject_GC_UnTrack(self);
    Rows_clear_refs(self);
    for (Py_ssize_t j = 0; j < self->ncols; j++) {
        Py_XDECREF(self->cols[j].name);
        buf_free(&self->cols[j].values);
        buf_free(&self->cols[j].offsets);
        buf_free(&self->cols[j].valid);
    }
    free(self->cols);
    buf_free(&self->ops);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Rows_get_rows(Rows *self, void *closure) { return PyLong_FromSsize_t(self->rows); }

static PyObject *Rows_get_divert(Rows *self, void *closure) {
    return Py_NewRef(self->divert ? self->divert : Py_None);
}

static int Rows_set_divert(Rows *self, PyObject *value, void *closure) {
    PyObject *old = self->divert;
    self->divert = (value == NULL || value == Py_None) ? NULL : Py_NewRef(value);
    Py_XDECREF(old);
    return 0;
}

static PyMethodDef Rows_methods[] = {
    {"next", (PyCFunction)(void (*)(void))Rows_next, METH_FASTCALL | METH_KEYWORDS,
     "next(**values): one row, a keyword per column."},
    {"add", (PyCFunction)Rows_add, METH_O, "add(values: dict): one row given as a dict."},
    {"push", (PyCFunction)(void (*)(void))Rows_push, METH_FASTCALL,
     "push(row: list, op: int): a row already checked, in column order."},
    {"take", (PyCFunction)Rows_take, METH_O, "take(lists) -> (ops, columns); empties the buffer."},
    {"clear", (PyCFunction)Rows_clear, METH_NOARGS, "Drop every row not yet taken."},
    {NULL},
};

static PyGetSetDef Rows_getset[] = {
    {"rows", (getter)Rows_get_rows, NULL, "Rows not yet taken.", NULL},
    {"divert", (getter)Rows_get_divert, (setter)Rows_set_divert,
     "A callable every row goes to instead (a dict each), or None.", NULL},
    {NULL},
};

static PyTypeObject RowsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "headwater.stream._native.Rows",
    .tp_basicsize = sizeof(Rows),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A stream's uncommitted rows, column by column.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Rows_init,
    .tp_dealloc = (destructor)Rows_dealloc,
    .tp_traverse = (traverseproc)Rows_traverse,
    .tp_clear = (inquiry)Rows_clear_refs,
    .tp_methods = Rows_methods,
    .tp_getset = Rows_getset,
};

/* ===========================================================================================
 * IntIndex: int64 key -> position (ABSENT = -1 for a deleted key)
 * ========================================================================================= */

#define ABSENT (-1)

typedef struct {
    PyObject_HEAD
    int64_t *keys;
    int64_t *pos;
    char *used;
    size_t cap; /* a power of two */
    size_t count;
} IntIndex;

static inline size_t slot_of(uint64_t k, size_t mask) {
    k ^= k >> 33; /* murmur3's finaliser: sequential keys spread over the table */
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return (size_t)k & mask;
}

static int index_grow(IntIndex *self, size_t need) {
    size_t cap = self->cap ? self->cap : 1024;
    while (cap < need * 2) cap *= 2; /* at most half full: short probes */
    if (cap == self->cap) return 0;
    int64_t *keys = malloc(cap * 8), *pos = malloc(cap * 8);
    char *used = calloc(cap, 1);
    if (!keys || !pos || !used) {
        free(keys);
        free(pos);
        free(used);
        return -1;
    }
    size_t mask = cap - 1;
    for (size_t i = 0; i < self->cap; i++) {
        if (!self->used[i]) continue;
        size_t s = slot_of((uint64_t)self->keys[i], mask);
        while (used[s]) s = (s + 1) & mask;
        used[s] = 1;
        keys[s] = self->keys[i];
        pos[s] = self->pos[i];
    }
    free(self->keys);
    free(self->pos);
    free(self->used);
    self->keys = keys;
    self->pos = pos;
    self->used = used;
    self->cap = cap;
    return 0;
}

static int64_t index_get(const IntIndex *self, int64_t key) {
    if (!self->cap) return ABSENT;
    size_t mask = self->cap - 1, s = slot_of((uint64_t)key, mask);
    while (self->used[s]) {
        if (self->keys[s] == key) return self->pos[s];
        s = (s + 1) & mask;
    }
    return ABSENT;
}

static void index_put(IntIndex *self, int64_t key, int64_t pos) {
    size_t mask = self->cap - 1, s = slot_of((uint64_t)key, mask);
    while (self->used[s]) {
        if (self->keys[s] == key) {
            self->pos[s] = pos;
            return;
        }
        s = (s + 1) & mask;
    }
    if (pos == ABSENT) return; /* deleting a key never stored */
    self->used[s] = 1;
    self->keys[s] = key;
    self->pos[s] = pos;
    self->count++;
}

static int int64_view(PyObject *o, Py_buffer *view, const char *what) {
    if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS) < 0) return -1;
    if (view->len % 8) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: a buffer of int64", what);
        return -1;
    }
    return 0;
}

/* lookup(keys) -> bytes of int64 positions (ABSENT where there is none). */
static PyObject *IntIndex_lookup(IntIndex *self, PyObject *keys) {
    Py_buffer k;
    if (int64_view(keys, &k, "lookup") < 0) return NULL;
    Py_ssize_t n = k.len / 8;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 8);
    if (out) {
        int64_t *o = (int64_t *)PyBytes_AS_STRING(out);
        const int64_t *kk = k.buf;
        for (Py_ssize_t i = 0; i < n; i++) o[i] = index_get(self, kk[i]);
    }
    PyBuffer_Release(&k);
    return out;
}

/* set(keys, positions): set each key (ABSENT deletes it). */
static PyObject *IntIndex_set(IntIndex *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_buffer k, p;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set(keys, positions)");
        return NULL;
    }
    if (int64_view(args[0], &k, "set") < 0) return NULL;
    if (int64_view(args[1], &p, "set") < 0) {
        PyBuffer_Release(&k);
        return NULL;
    }
    PyObject *r = NULL;
    if (k.len != p.len) PyErr_SetString(PyExc_ValueError, "set(): as many positions as keys");
    else if (index_grow(self, self->count + (size_t)(k.len / 8)) < 0) PyErr_NoMemory();
    else {
        const int64_t *kk = k.buf, *pp = p.buf;
        for (Py_ssize_t i = 0; i < k.len / 8; i++) index_put(self, kk[i], pp[i]);
        r = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&k);
    PyBuffer_Release(&p);
    return r;
}

/* positions() -> bytes of every live key's position (for compaction). */
static PyObject *IntIndex_positions(IntIndex *self, PyObject *unused) {
    size_t live = 0;
    for (size_t i = 0; i < self->cap; i++) live += self->used[i] && self->pos[i] != ABSENT;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)live * 8);
    if (!out) return NULL;
    int64_t *o = (int64_t *)PyBytes_AS_STRING(out);
    for (size_t i = 0; i < self->cap; i++)
        if (self->used[i] && self->pos[i] != ABSENT) *o++ = self->pos[i];
    return out;
}

/* remap(old_to_new): after compaction every live position p becomes old_to_new[p], and the
 * table is rebuilt without the deleted keys (else keys that come and go would fill it). */
static PyObject *IntIndex_remap(IntIndex *self, PyObject *mapping) {
    Py_buffer m;
    if (int64_view(mapping, &m, "remap") < 0) return NULL;
    const int64_t *map = m.buf;
    Py_ssize_t n = m.len / 8;
    size_t live = 0;
    for (size_t i = 0; i < self->cap; i++) {
        if (!self->used[i] || self->pos[i] == ABSENT) continue;
        if (self->pos[i] < 0 || self->pos[i] >= n) {
            PyBuffer_Release(&m);
            PyErr_SetString(PyExc_IndexError, "remap(): a position beyond the mapping");
            return NULL;
        }
        live++;
    }
    IntIndex fresh = {0};
    if (index_grow(&fresh, live) < 0) {
        PyBuffer_Release(&m);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < self->cap; i++)
        if (self->used[i] && self->pos[i] != ABSENT)
            index_put(&fresh, self->keys[i], map[self->pos[i]]);
    PyBuffer_Release(&m);
    free(self->keys);
    free(self->pos);
    free(self->used);
    self->keys = fresh.keys;
    self->pos = fresh.pos;
    self->used = fresh.used;
    self->cap = fresh.cap;
    self->count = fresh.count;
    Py_RETURN_NONE;
}

static PyObject *IntIndex_len(IntIndex *self, void *closure) {
    return PyLong_FromSize_t(self->count);
}

static void IntIndex_dealloc(IntIndex *self) {
    free(self->keys);
    free(self->pos);
    free(self->used);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef IntIndex_methods[] = {
    {"lookup", (PyCFunction)IntIndex_lookup, METH_O, "lookup(keys) -> int64 positions"},
    {"set", (PyCFunction)(void (*)(void))IntIndex_set, METH_FASTCALL, "set(keys, positions)"},
    {"positions", (PyCFunction)IntIndex_positions, METH_NOARGS, "every live position"},
    {"remap", (PyCFunction)IntIndex_remap, METH_O, "remap(old_to_new)"},
    {NULL},
};

static PyGetSetDef IntIndex_getset[] = {
    {"slots", (getter)IntIndex_len, NULL, "keys held, deleted ones included", NULL},
    {NULL},
};

static PyTypeObject IntIndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "headwater.stream._native.IntIndex",
    .tp_basicsize = sizeof(IntIndex),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "int64 key -> row position.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)IntIndex_dealloc,
    .tp_methods = IntIndex_methods,
    .tp_getset = IntIndex_getset,
};

/* ===========================================================================================
 * csv_lines: Arrow columns -> CSV lines, every value quoted, null empty (Pathway's format)
 * ========================================================================================= */

typedef struct {
    int kind; /* K_*, or K_INT8 for the diff column */
    Py_buffer valid, data, offsets;
    int has_valid, has_offsets;
    Py_ssize_t offset; /* the array's offset into its buffers */
} CsvCol;

enum { K_INT8 = 5 };

static const double POW10[] = {1, 10, 100, 1000, 10000};

/* An integer's decimal digits (printf is several times slower). */
static int put_int(char *o, long long v) {
    char tmp[24];
    int n = 0, len = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) o[len++] = '-';
    while (n) o[len++] = tmp[--n];
    return len;
}

/* A double as Python's repr() writes it (shortest round trip), into out; returns length. */
static int repr_double(double x, char *out) {
    if (isnan(x)) return sprintf(out, "nan");
    if (isinf(x)) return sprintf(out, x > 0 ? "inf" : "-inf");
    char *p = out;
    if (signbit(x)) {
        *p++ = '-';
        x = -x;
    }
    /* The common case: a decimal with at most 4 places and 15 digits. Such a decimal is the
     * only one of up to 15 digits that rounds to x, so it is the shortest: repr's digits. */
    for (int k = 0; k <= 4; k++) {
        double y = x * POW10[k];
        if (y >= 1e15 || y != floor(y) || y / POW10[k] != x) continue;
        char digits[24];
        int n = put_int(digits, (long long)y);
        int places = k;
        while (places > 0 && digits[n - 1] == '0') { /* 2.50 -> 2.5 */
            n--;
            places--;
        }
        int whole = n - places;
        if (whole <= 0) {
            *p++ = '0';
            *p++ = '.';
            for (int i = whole; i < 0; i++) *p++ = '0';
            memcpy(p, digits, (size_t)n);
            p += n;
        } else {
            memcpy(p, digits, (size_t)whole);
            p += whole;
            *p++ = '.';
            if (places) {
                memcpy(p, digits + whole, (size_t)places);
                p += places;
            } else *p++ = '0';
        }
        return (int)(p - out);
    }
    /* Otherwise the fewest of 15, 16, 17 significant digits that read back as x (any number
     * of digits for a subnormal, which has fewer than 15 digits' precision). */
    char sci[40];
    int prec = x < DBL_MIN ? 1 : 15;
    for (; prec < 17; prec++) {
        sprintf(sci, "%.*e", prec - 1, x);
        if (strtod(sci, NULL) == x) break;
    }
    if (prec == 17) sprintf(sci, "%.16e", x);
    char digits[24];
    int n = 0;
    const char *s = sci;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[n++] = *s;
    int exp = atoi(s + 1);
    while (n > 1 && digits[n - 1] == '0') n--;
    if (exp >= -4 && exp < 16) { /* repr's fixed notation */
        if (exp < 0) { /* 0.000123 */
            *p++ = '0';
            *p++ = '.';
            for (int i = exp + 1; i < 0; i++) *p++ = '0';
            memcpy(p, digits, (size_t)n);
            p += n;
        } else {
            int whole = exp + 1;
            for (int i = 0; i < whole; i++) *p++ = i < n ? digits[i] : '0';
            *p++ = '.';
            if (n > whole) {
                memcpy(p, digits + whole, (size_t)(n - whole));
                p += n - whole;
            } else *p++ = '0';
        }
    } else { /* 1e+16, 1.5e-07 */
        *p++ = digits[0];
        if (n > 1) {
            *p++ = '.';
            memcpy(p, digits + 1, (size_t)(n - 1));
            p += n - 1;
        }
        p += sprintf(p, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
    return (int)(p - out);
}

/* Quoted text, doubling quotes; bytes that are not UTF-8 are written as Python's
 * decode("utf-8", "backslashreplace") writes them. */
static int put_quoted(Buf *b, const char *s, size_t n, int check_utf8) {
    if (buf_reserve(b, n * 4 + 2) < 0) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"') {
            *o++ = '"';
            *o++ = '"';
            i++;
            continue;
        }
        if (ch < 0x80 || !check_utf8) {
            *o++ = (char)ch;
            i++;
            continue;
        }
        /* A well-formed UTF-8 sequence is copied; any other byte is escaped as \xNN. */
        size_t len = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC2 ? 2 : 0;
        int ok = len && i + len <= n && ch <= 0xF4;
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len == 3) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = !(ch == 0xE0 && c1 < 0xA0) && !(ch == 0xED && c1 >= 0xA0);
        }
        if (ok && len == 4) {
            unsigned char c1 = (unsigned char)s[i + 1];
            ok = !(ch == 0xF0 && c1 < 0x90) && !(ch == 0xF4 && c1 >= 0x90);
        }
        if (ok) {
            memcpy(o, s + i, len);
            o += len;
            i += len;
        } else {
            o += sprintf(o, "\\x%02x", ch);
            i++;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

static int csv_format(CsvCol *cols, Py_ssize_t ncols, Py_ssize_t n, Buf *out) {
    char num[64];
    for (Py_ssize_t i = 0; i < n; i++) {
        for (Py_ssize_t j = 0; j < ncols; j++) {
            CsvCol *c = &cols[j];
            Py_ssize_t at = i + c->offset;
            if (buf_reserve(out, 80) < 0) return -1;
            if (j) out->data[out->len++] = ',';
            if (c->has_valid && !((((const unsigned char *)c->valid.buf)[at >> 3] >> (at & 7)) & 1))
                continue; /* null: nothing between the commas */
            int len;
            switch (c->kind) {
            case K_INT:
            case K_INT8: {
                long long v = c->kind == K_INT ? ((const int64_t *)c->data.buf)[at]
                                               : ((const int8_t *)c->data.buf)[at];
                char *o = out->data + out->len;
                *o++ = '"';
                o += put_int(o, v);
                *o++ = '"';
                out->len = (size_t)(o - out->data);
                break;
            }
            case K_FLOAT:
                num[0] = '"';
                len = repr_double(((const double *)c->data.buf)[at], num + 1);
                num[len + 1] = '"';
                buf_put(out, num, (size_t)len + 2);
                break;
            case K_BOOL: {
                int v = (((const unsigned char *)c->data.buf)[at >> 3] >> (at & 7)) & 1;
                buf_put(out, v ? "\"true\"" : "\"false\"", v ? 6 : 7);
                break;
            }
            default: {
                const int32_t *off = c->offsets.buf;
                if (put_quoted(out, (const char *)c->data.buf + off[at],
                               (size_t)(off[at + 1] - off[at]), c->kind == K_BYTES) < 0)
                    return -1;
            }
            }
        }
        if (buf_reserve(out, 1) < 0) return -1;
        out->data[out->len++] = '\n';
    }
    return 0;
}

/* csv_lines(n, columns) -> bytes. Each column: (kind, offset, validity or None, data, offsets
 * or None), the buffers of an Arrow array. The text is made without the GIL. */
static PyObject *csv_lines(PyObject *module, PyObject *args) {
    Py_ssize_t n;
    PyObject *spec;
    if (!PyArg_ParseTuple(args, "nO", &n, &spec)) return NULL;
    PyObject *seq = PySequence_Fast(spec, "csv_lines: a sequence of columns");
    if (!seq) return NULL;
    Py_ssize_t ncols = PySequence_Fast_GET_SIZE(seq);
    CsvCol *cols = calloc((size_t)(ncols ? ncols : 1), sizeof(CsvCol));
    PyObject *result = NULL;
    Buf out = {0};
    Py_ssize_t got = 0;
    if (!cols) {
        PyErr_NoMemory();
        goto done;
    }
    for (; got < ncols; got++) {
        PyObject *valid, *data, *offsets;
        CsvCol *c = &cols[got];
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, got), "inOOO", &c->kind, &c->offset,
                              &valid, &data, &offsets))
            goto done;
        if (PyObject_GetBuffer(data, &c->data, PyBUF_SIMPLE) < 0) goto done;
        if (valid != Py_None) {
            if (PyObject_GetBuffer(valid, &c->valid, PyBUF_SIMPLE) < 0) goto release_data;
            c->has_valid = 1;
        }
        if (offsets != Py_None) {
            if (PyObject_GetBuffer(offsets, &c->offsets, PyBUF_SIMPLE) < 0) goto release_valid;
            c->has_offsets = 1;
        }
        if ((c->kind == K_STR || c->kind == K_BYTES) != c->has_offsets) {
            PyErr_SetString(PyExc_ValueError, "csv_lines: offsets go with text columns only");
            got++;
            goto done;
        }
        continue;
    release_valid:
        if (c->has_valid) PyBuffer_Release(&c->valid);
        c->has_valid = 0;
    release_data:
        PyBuffer_Release(&c->data);
        goto done;
    }
    int failed;
    Py_BEGIN_ALLOW_THREADS failed = csv_format(cols, ncols, n, &out);
    Py_END_ALLOW_THREADS if (failed) PyErr_NoMemory();
    else result = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
done:
    for (Py_ssize_t j = 0; j < got; j++) {
        PyBuffer_Release(&cols[j].data);
        if (cols[j].has_valid) PyBuffer_Release(&cols[j].valid);
        if (cols[j].has_offsets) PyBuffer_Release(&cols[j].offsets);
    }
    free(cols);
    buf_free(&out);
    Py_DECREF(seq);
    return result;
}

/* repr_float(x) -> str: the C formatting of one float, for tests against repr(). */
static PyObject *repr_float(PyObject *module, PyObject *arg) {
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred()) return NULL;
    char out[64];
    int n = repr_double(x, out);
    return PyUnicode_FromStringAndSize(out, n);
}

static PyMethodDef module_methods[] = {
    {"csv_lines", csv_lines, METH_VARARGS, "csv_lines(rows, columns) -> bytes"},
    {"repr_float", repr_float, METH_O, "repr_float(x) -> str, as repr() writes it"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "The stream's per-row hot paths in C.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&RowsType) < 0 || PyType_Ready(&IntIndexType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Rows", (PyObject *)&RowsType) < 0 ||
        PyModule_AddObjectRef(m, "IntIndex", (PyObject *)&IntIndexType) < 0 ||
        PyModule_AddIntConstant(m, "INT", K_INT) < 0 ||
        PyModule_AddIntConstant(m, "FLOAT", K_FLOAT) < 0 ||
        PyModule_AddIntConstant(m, "STR", K_STR) < 0 ||
        PyModule_AddIntConstant(m, "BOOL", K_BOOL) < 0 ||
        PyModule_AddIntConstant(m, "BYTES", K_BYTES) < 0 ||
        PyModule_AddIntConstant(m, "INT8", K_INT8) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
