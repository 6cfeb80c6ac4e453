/* Optional C accelerator for the instrumentation's recording path.
 *
 * Why: in a message-heavy node each recorded event cost the node's main
 * thread ~1.5 us in the pure-Python path, most of it allocating a tuple and
 * three large ints per event (pymalloc on memory another thread frees) and
 * interpreting the hot-path bytecode, plus ~0.3 us on the reporter thread
 * for msgpack-encoding the tuples. A Recorder writes each event straight
 * into one growing byte buffer, already msgpack-encoded exactly as
 * instrumentation/protocol.py specifies ([seq, lamport, wall_ns, mono_ns,
 * kind, *fields], minimal msgpack encodings as msgpack-python produces), so
 * an event costs no Python object and the reporter only frames and
 * compresses bytes. The wire format does not change.
 *
 * The same guarantees as the pure-Python EventBuffer: bounded (room is
 * appended < until, set by the reporter), dropped events counted, never
 * raises into the node for ordinary inputs (odd field types go through the
 * Python helpers the module passes in). Relies on the GIL: each method runs
 * without releasing it, so (seq, lamport) are taken and the event stored
 * atomically. instrumentation/__init__.py uses it only on GIL builds and
 * falls back to the pure-Python path when this module is missing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {
    PyObject_HEAD
    char *buf;              /* packed events */
    Py_ssize_t len, cap;    /* bytes used / allocated */
    Py_ssize_t *offs;       /* start offset of each buffered event */
    Py_ssize_t n, offcap;   /* buffered events / allocated offsets */
    long long t;            /* Lamport time */
    long long seq;          /* last event sequence number */
    long long appended;     /* events ever accepted */
    long long taken;        /* events ever taken by the reporter */
    long long until;        /* accept while appended < until */
    long long wake_at;      /* call wake when appended reaches this */
    long long dropped;      /* events ever dropped (buffer full) */
    long long capacity;
    long long wall_offset;  /* wall_ns = mono_ns + wall_offset */
    PyObject *wake;         /* callable(): wake the reporter */
    PyObject *edges;        /* deque of pending code edges (or None) */
    PyObject *on_edges;     /* callable(): turn pending edges into a COVERAGE event */
    PyObject *fix_fields;   /* callable(peer, type, id) -> (str, str, int|str|bytes) */
    PyObject *fix_stamp;    /* callable(stamp) -> int */
} Recorder;

/* -- byte buffer ------------------------------------------------------------ */

static int
reserve(Recorder *r, Py_ssize_t extra)
{
    if (r->len + extra <= r->cap)
        return 0;
    Py_ssize_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + extra)
        cap *= 2;
    char *nb = PyMem_Realloc(r->buf, cap);
    if (nb == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    r->buf = nb;
    r->cap = cap;
    return 0;
}

static int
push_offset(Recorder *r, Py_ssize_t off)
{
    if (r->n == r->offcap) {
        Py_ssize_t cap = r->offcap ? r->offcap * 2 : 1024;
        Py_ssize_t *no = PyMem_Realloc(r->offs, cap * sizeof(Py_ssize_t));
        if (no == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        r->offs = no;
        r->offcap = cap;
    }
    r->offs[r->n++] = off;
    return 0;
}

static inline void
put_be16(char *p, uint16_t v) { p[0] = (char)(v >> 8); p[1] = (char)v; }
static inline void
put_be32(char *p, uint32_t v) { p[0] = (char)(v >> 24); p[1] = (char)(v >> 16); p[2] = (char)(v >> 8); p[3] = (char)v; }
static inline void
put_be64(char *p, uint64_t v) { put_be32(p, (uint32_t)(v >> 32)); put_be32(p + 4, (uint32_t)v); }

/* Minimal msgpack encodings, as msgpack-python chooses them. The caller has
 * reserved at least 9 bytes for the integer forms. */
static inline Py_ssize_t
enc_int(char *p, long long v)
{
    if (v >= 0) {
        if (v < 128) { p[0] = (char)v; return 1; }
        if (v < 256) { p[0] = (char)0xcc; p[1] = (char)v; return 2; }
        if (v < 65536) { p[0] = (char)0xcd; put_be16(p + 1, (uint16_t)v); return 3; }
        if (v <= 0xffffffffLL) { p[0] = (char)0xce; put_be32(p + 1, (uint32_t)v); return 5; }
        p[0] = (char)0xcf; put_be64(p + 1, (uint64_t)v); return 9;
    }
    if (v >= -32) { p[0] = (char)(0xe0 | (v + 32)); return 1; }
    if (v >= -128) { p[0] = (char)0xd0; p[1] = (char)(int8_t)v; return 2; }
    if (v >= -32768) { p[0] = (char)0xd1; put_be16(p + 1, (uint16_t)(int16_t)v); return 3; }
    if (v >= -2147483648LL) { p[0] = (char)0xd2; put_be32(p + 1, (uint32_t)(int32_t)v); return 5; }
    p[0] = (char)0xd3; put_be64(p + 1, (uint64_t)v); return 9;
}

static int
write_raw(Recorder *r, int kind, const char *s, Py_ssize_t n)
{
    /* kind 0: str, 1: bin */
    if (reserve(r, n + 5) < 0)
        return -1;
    char *p = r->buf + r->len;
    Py_ssize_t h;
    if (kind == 0) {
        if (n < 32) { p[0] = (char)(0xa0 | n); h = 1; }
        else if (n < 256) { p[0] = (char)0xd9; p[1] = (char)n; h = 2; }
        else if (n < 65536) { p[0] = (char)0xda; put_be16(p + 1, (uint16_t)n); h = 3; }
        else { p[0] = (char)0xdb; put_be32(p + 1, (uint32_t)n); h = 5; }
    }
    else {
        if (n < 256) { p[0] = (char)0xc4; p[1] = (char)n; h = 2; }
        else if (n < 65536) { p[0] = (char)0xc5; put_be16(p + 1, (uint16_t)n); h = 3; }
        else { p[0] = (char)0xc6; put_be32(p + 1, (uint32_t)n); h = 5; }
    }
    memcpy(p + h, s, n);
    r->len += h + n;
    return 0;
}

static int
write_str(Recorder *r, PyObject *s)
{
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    if (u != NULL)
        return write_raw(r, 0, u, n);
    /* lone surrogates: encode them escaped rather than fail */
    PyErr_Clear();
    PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
    if (b == NULL)
        return -1;
    int rc = write_raw(r, 0, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return rc;
}

/* An exact int, str or bytes (the key fields after fix_fields). */
static int
write_key(Recorder *r, PyObject *o)
{
    if (PyLong_CheckExact(o)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (!overflow) {
            if (v == -1 && PyErr_Occurred())
                return -1;
            if (reserve(r, 9) < 0)
                return -1;
            r->len += enc_int(r->buf + r->len, v);
            return 0;
        }
        if (overflow > 0) {
            unsigned long long u = PyLong_AsUnsignedLongLong(o);
            if (!(u == (unsigned long long)-1 && PyErr_Occurred())) {
                if (reserve(r, 9) < 0)
                    return -1;
                r->buf[r->len] = (char)0xcf;
                put_be64(r->buf + r->len + 1, (uint64_t)u);
                r->len += 9;
                return 0;
            }
            PyErr_Clear();
        }
        /* beyond 64 bits: as its decimal text, like reporter.sanitize */
        PyObject *s = PyObject_Str(o);
        if (s == NULL)
            return -1;
        int rc = write_str(r, s);
        Py_DECREF(s);
        return rc;
    }
    if (PyUnicode_CheckExact(o))
        return write_str(r, o);
    if (PyBytes_CheckExact(o))
        return write_raw(r, 1, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
    PyObject *s = PyObject_Str(o);
    if (s == NULL)
        return -1;
    int rc = write_str(r, s);
    Py_DECREF(s);
    return rc;
}

static inline long long
mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Run pending coverage edges into a COVERAGE event first (as the pure path does). */
static int
flush_edges(Recorder *r)
{
    if (r->edges != NULL && r->edges != Py_None && Py_SIZE(r->edges) > 0 && r->on_edges != NULL) {
        PyObject *res = PyObject_CallNoArgs(r->on_edges);
        if (res == NULL)
            return -1;
        Py_DECREF(res);
    }
    return 0;
}

/* Header of one event: array(5 + nfields), seq, lamport, wall, mono, kind. */
static int
begin_event(Recorder *r, Py_ssize_t nfields, long long seq, long long t, long long m, int kind)
{
    if (push_offset(r, r->len) < 0)
        return -1;
    if (reserve(r, 5 + 4 * 9 + 1) < 0) {
        r->n--;
        return -1;
    }
    char *p = r->buf + r->len;
    Py_ssize_t k = 5 + nfields;
    Py_ssize_t h;
    if (k < 16) { p[0] = (char)(0x90 | k); h = 1; }
    else if (k < 65536) { p[0] = (char)0xdc; put_be16(p + 1, (uint16_t)k); h = 3; }
    else { p[0] = (char)0xdd; put_be32(p + 1, (uint32_t)k); h = 5; }
    h += enc_int(p + h, seq);
    h += enc_int(p + h, t);
    h += enc_int(p + h, m + r->wall_offset);
    h += enc_int(p + h, m);
    h += enc_int(p + h, kind);
    r->len += h;
    return 0;
}

/* Undo a partly written event (an encoding error): never leave half an event. */
static void
abort_event(Recorder *r)
{
    r->n--;
    r->len = r->offs[r->n];
}

static int
accepted(Recorder *r)
{
    if (r->appended < r->until) {
        r->appended++;
        return 1;
    }
    r->dropped++;
    return 0;
}

static int
maybe_wake(Recorder *r)
{
    if (r->appended == r->wake_at && r->wake != NULL && r->wake != Py_None) {
        PyObject *res = PyObject_CallNoArgs(r->wake);
        if (res == NULL)
            return -1;
        Py_DECREF(res);
    }
    return 0;
}

static int
message_fields(Recorder *r, PyObject **peer, PyObject **mtype, PyObject **mid, PyObject **hold)
{
    if (PyUnicode_CheckExact(*peer) && PyUnicode_CheckExact(*mtype) && PyLong_CheckExact(*mid))
        return 0;
    PyObject *res = PyObject_CallFunctionObjArgs(r->fix_fields, *peer, *mtype, *mid, NULL);
    if (res == NULL)
        return -1;
    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 3) {
        Py_DECREF(res);
        PyErr_SetString(PyExc_TypeError, "fix_fields must return a 3-tuple");
        return -1;
    }
    *peer = PyTuple_GET_ITEM(res, 0);
    *mtype = PyTuple_GET_ITEM(res, 1);
    *mid = PyTuple_GET_ITEM(res, 2);
    *hold = res;
    return 0;
}

static int
write_message(Recorder *r, PyObject *peer, PyObject *mtype, PyObject *mid)
{
    if (write_key(r, peer) < 0 || write_key(r, mtype) < 0 || write_key(r, mid) < 0)
        return -1;
    return 0;
}

/* send(dst, msg_type, msg_id) -> Lamport stamp */
static PyObject *
Recorder_send(Recorder *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "send(dst, msg_type, msg_id)");
        return NULL;
    }
    PyObject *peer = args[0], *mtype = args[1], *mid = args[2], *hold = NULL;
    if (flush_edges(r) < 0)
        return NULL;
    if (message_fields(r, &peer, &mtype, &mid, &hold) < 0)
        return NULL;
    long long m = mono_ns();
    long long t = ++r->t;
    long long s = ++r->seq;
    if (accepted(r)) {
        int began = begin_event(r, 3, s, t, m, 1) == 0;
        if (!began || write_message(r, peer, mtype, mid) < 0) {
            if (began)
                abort_event(r);
            r->appended--;
            r->dropped++;
            PyErr_Clear();
        }
        else if (maybe_wake(r) < 0) {
            PyErr_Clear();
        }
    }
    Py_XDECREF(hold);
    return PyLong_FromLongLong(t);
}

/* recv(src, msg_type, msg_id, stamp) -> None */
static PyObject *
Recorder_recv(Recorder *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "recv(src, msg_type, msg_id, stamp)");
        return NULL;
    }
    PyObject *peer = args[0], *mtype = args[1], *mid = args[2], *stamp_obj = args[3];
    PyObject *hold = NULL, *fixed = NULL;
    long long stamp = 0;
    if (!PyLong_CheckExact(stamp_obj)) {
        fixed = PyObject_CallOneArg(r->fix_stamp, stamp_obj);
        if (fixed == NULL)
            return NULL;
        stamp_obj = fixed;
    }
    if (PyLong_Check(stamp_obj)) {
        int overflow = 0;
        stamp = PyLong_AsLongLongAndOverflow(stamp_obj, &overflow);
        if (overflow || (stamp == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            stamp = 0; /* beyond 63 bits: unusable, like _as_stamp */
        }
    }
    Py_XDECREF(fixed);
    if (flush_edges(r) < 0)
        return NULL;
    if (message_fields(r, &peer, &mtype, &mid, &hold) < 0)
        return NULL;
    long long m = mono_ns();
    long long t = r->t;
    if (stamp > t)
        t = stamp;
    t += 1;
    r->t = t;
    long long s = ++r->seq;
    if (accepted(r)) {
        int began = begin_event(r, 4, s, t, m, 2) == 0;
        if (!began || write_message(r, peer, mtype, mid) < 0 || reserve(r, 9) < 0) {
            if (began)
                abort_event(r);
            r->appended--;
            r->dropped++;
            PyErr_Clear();
        }
        else {
            r->len += enc_int(r->buf + r->len, stamp);
            if (maybe_wake(r) < 0)
                PyErr_Clear();
        }
    }
    Py_XDECREF(hold);
    Py_RETURN_NONE;
}

/* emit(kind, packed_fields) -> stamp; packed_fields is the msgpack array of the
 * kind's fields (the caller packed it); its elements are copied after the
 * event header. Pending edges are the caller's business here. */
static PyObject *
Recorder_emit(Recorder *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyLong_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "emit(kind: int, packed_fields: bytes)");
        return NULL;
    }
    long kind = PyLong_AsLong(args[0]);
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[1]), h, nf;
    if (size >= 1 && (p[0] & 0xf0) == 0x90) { nf = p[0] & 0x0f; h = 1; }
    else if (size >= 3 && p[0] == 0xdc) { nf = ((Py_ssize_t)p[1] << 8) | p[2]; h = 3; }
    else if (size >= 5 && p[0] == 0xdd) {
        nf = ((Py_ssize_t)p[1] << 24) | ((Py_ssize_t)p[2] << 16) | ((Py_ssize_t)p[3] << 8) | p[4];
        h = 5;
    }
    else {
        PyErr_SetString(PyExc_ValueError, "packed_fields must be a msgpack array");
        return NULL;
    }
    long long m = mono_ns();
    long long t = ++r->t;
    long long s = ++r->seq;
    if (accepted(r)) {
        int began = begin_event(r, nf, s, t, m, (int)kind) == 0;
        if (!began || reserve(r, size - h) < 0) {
            if (began)
                abort_event(r);
            r->appended--;
            r->dropped++;
            PyErr_Clear();
        }
        else {
            memcpy(r->buf + r->len, p + h, size - h);
            r->len += size - h;
            if (maybe_wake(r) < 0)
                PyErr_Clear();
        }
    }
    return PyLong_FromLongLong(t);
}

/* take(max_events, max_bytes) -> (bytes, n): the oldest events, at most
 * max_events and max_bytes of them (but at least one if any wait). */
static PyObject *
Recorder_take(Recorder *r, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "take(max_events, max_bytes)");
        return NULL;
    }
    Py_ssize_t max_events = PyLong_AsSsize_t(args[0]);
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[1]);
    if ((max_events == -1 || max_bytes == -1) && PyErr_Occurred())
        return NULL;
    Py_ssize_t k = r->n < max_events ? r->n : max_events;
    if (k < 0)
        k = 0;
    /* shrink k until the bytes fit (keep at least one event) */
    while (k > 1 && (k < r->n ? r->offs[k] : r->len) > max_bytes) {
        Py_ssize_t lo = 1, hi = k; /* largest j in [1,k] with end(j) <= max_bytes */
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi + 1) / 2;
            if ((mid < r->n ? r->offs[mid] : r->len) <= max_bytes)
                lo = mid;
            else
                hi = mid - 1;
        }
        k = lo;
    }
    Py_ssize_t end = k < r->n ? r->offs[k] : r->len;
    PyObject *blob = PyBytes_FromStringAndSize(r->buf, end);
    if (blob == NULL)
        return NULL;
    if (k == r->n) {
        r->len = 0;
        r->n = 0;
    }
    else {
        memmove(r->buf, r->buf + end, r->len - end);
        r->len -= end;
        for (Py_ssize_t i = k; i < r->n; i++)
            r->offs[i - k] = r->offs[i] - end;
        r->n -= k;
    }
    r->taken += k;
    PyObject *res = Py_BuildValue("(Nn)", blob, k);
    /* give memory back after a burst */
    if (r->n == 0 && r->cap > (1 << 22)) {
        PyMem_Free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
    return res;
}

static Py_ssize_t
Recorder_len(Recorder *r)
{
    return r->n;
}

static int
Recorder_init(Recorder *r, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"capacity", "batch", "wall_offset", "lamport", "seq",
                             "fix_fields", "fix_stamp", "edges", "on_edges", NULL};
    long long capacity = 65536, batch = 4096, wall_offset = 0, t = 0, seq = 0;
    PyObject *fix_fields = NULL, *fix_stamp = NULL, *edges = Py_None, *on_edges = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|LLLLLOOOO", kwlist, &capacity, &batch,
                                     &wall_offset, &t, &seq, &fix_fields, &fix_stamp, &edges,
                                     &on_edges))
        return -1;
    if (capacity < 1) {
        PyErr_SetString(PyExc_ValueError, "buffer capacity must be at least 1");
        return -1;
    }
    if (fix_fields == NULL || fix_stamp == NULL || !PyCallable_Check(fix_fields)
        || !PyCallable_Check(fix_stamp)) {
        PyErr_SetString(PyExc_TypeError, "fix_fields and fix_stamp must be callables");
        return -1;
    }
    r->capacity = capacity;
    r->until = capacity;
    r->wake_at = batch;
    r->wall_offset = wall_offset;
    r->t = t;
    r->seq = seq;
    Py_XSETREF(r->fix_fields, Py_NewRef(fix_fields));
    Py_XSETREF(r->fix_stamp, Py_NewRef(fix_stamp));
    Py_XSETREF(r->edges, Py_NewRef(edges));
    Py_XSETREF(r->on_edges, Py_NewRef(on_edges));
    return 0;
}

static int
Recorder_traverse(Recorder *r, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(r));
    Py_VISIT(r->wake);
    Py_VISIT(r->edges);
    Py_VISIT(r->on_edges);
    Py_VISIT(r->fix_fields);
    Py_VISIT(r->fix_stamp);
    return 0;
}

static int
Recorder_clear(Recorder *r)
{
    Py_CLEAR(r->wake);
    Py_CLEAR(r->edges);
    Py_CLEAR(r->on_edges);
    Py_CLEAR(r->fix_fields);
    Py_CLEAR(r->fix_stamp);
    return 0;
}

static void
Recorder_dealloc(Recorder *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    PyObject_GC_UnTrack(r);
    Recorder_clear(r);
    PyMem_Free(r->buf);
    PyMem_Free(r->offs);
    tp->tp_free((PyObject *)r);
    Py_DECREF(tp);
}

static PyMethodDef Recorder_methods[] = {
    {"send", (PyCFunction)(void (*)(void))Recorder_send, METH_FASTCALL,
     "send(dst, msg_type, msg_id) -> stamp: record a SEND"},
    {"recv", (PyCFunction)(void (*)(void))Recorder_recv, METH_FASTCALL,
     "recv(src, msg_type, msg_id, stamp): record a RECV"},
    {"emit", (PyCFunction)(void (*)(void))Recorder_emit, METH_FASTCALL,
     "emit(kind, packed_fields) -> stamp: record an event whose fields are a packed msgpack array"},
    {"take", (PyCFunction)(void (*)(void))Recorder_take, METH_FASTCALL,
     "take(max_events, max_bytes) -> (bytes, n): remove the oldest packed events"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Recorder_members[] = {
    {"t", T_LONGLONG, offsetof(Recorder, t), 0, "Lamport time"},
    {"seq", T_LONGLONG, offsetof(Recorder, seq), 0, "last event sequence number"},
    {"appended", T_LONGLONG, offsetof(Recorder, appended), 0, "events ever accepted"},
    {"taken", T_LONGLONG, offsetof(Recorder, taken), 0, "events ever taken"},
    {"until", T_LONGLONG, offsetof(Recorder, until), 0, "accept while appended < until"},
    {"wake_at", T_LONGLONG, offsetof(Recorder, wake_at), 0, "wake the reporter at this count"},
    {"dropped", T_LONGLONG, offsetof(Recorder, dropped), 0, "events ever dropped"},
    {"capacity", T_LONGLONG, offsetof(Recorder, capacity), READONLY, "events buffered at most"},
    {"wake", T_OBJECT, offsetof(Recorder, wake), 0, "callable waking the reporter"},
    {"nbytes", T_PYSSIZET, offsetof(Recorder, len), READONLY, "bytes buffered"},
    {NULL},
};

static PyType_Slot Recorder_slots[] = {
    {Py_tp_doc, "Packed, bounded event recorder (see instrumentation/_fast.c)."},
    {Py_tp_init, Recorder_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Recorder_dealloc},
    {Py_tp_traverse, Recorder_traverse},
    {Py_tp_clear, Recorder_clear},
    {Py_tp_methods, Recorder_methods},
    {Py_tp_members, Recorder_members},
    {Py_sq_length, Recorder_len},
    {0, NULL},
};

static PyType_Spec Recorder_spec = {
    .name = "instrumentation._fast.Recorder",
    .basicsize = sizeof(Recorder),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Recorder_slots,
};

static int
fast_exec(PyObject *m)
{
    PyObject *tp = PyType_FromModuleAndSpec(m, &Recorder_spec, NULL);
    if (tp == NULL)
        return -1;
    if (PyModule_AddObjectRef(m, "Recorder", tp) < 0) {
        Py_DECREF(tp);
        return -1;
    }
    Py_DECREF(tp);
    return 0;
}

static PyModuleDef_Slot fast_slots[] = {
    {Py_mod_exec, fast_exec},
    {0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "instrumentation._fast",
    .m_doc = "Optional C accelerator for recording events (falls back to pure Python).",
    .m_size = 0,
    .m_slots = fast_slots,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    return PyModuleDef_Init(&fast_module);
}
