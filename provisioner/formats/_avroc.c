/* An interpreter of Avro read programs (see avro_program.py): the values of a whole record (the
 * wire format's header included) read in C, exactly as the generated Python reader of
 * avro_compiled.py reads them, errors and their positions included.
 *
 * The bytes are hostile: every read is checked against the end before it is made, a length is
 * compared with the bytes left before anything is allocated, and the recursion follows the
 * program, whose depth the schema bounds (recursive schemas are not given programs). A program is
 * checked once, when its Reader is made, and turned into a tree of C nodes; the program tuple
 * stays referenced by the Reader, so the nodes borrow its objects. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>

enum {
    OP_NULL = 0, OP_BOOLEAN, OP_LONG, OP_FLOAT, OP_DOUBLE, OP_STRING, OP_BYTES, OP_FIXED, OP_ENUM,
    OP_RECORD, OP_UNION, OP_ARRAY, OP_MAP, OP_CONVERT, OP_TIMESTAMP, OP_COUNT
};

#define MAX_PROGRAM_DEPTH 1000

typedef struct Node {
    int op;
    Py_ssize_t size;        /* fixed: its size; enum: the number of symbols; record/union: children */
    long long multiplier;   /* timestamp: nanoseconds per unit of the base value */
    PyObject *object;       /* enum: symbols; record: field names; convert/timestamp: the callable */
    PyObject *type;         /* timestamp: the Timestamp type */
    PyObject *tz;           /* timestamp: UTC */
    struct Node **children;
} Node;

typedef struct {
    PyObject_HEAD
    Node *root;
    PyObject *program;
    PyObject *failure;      /* failure(error, position) -> DecodeError */
    PyObject *left_over;    /* LeftOver(count) */
    PyObject *too_long;     /* too_long(size) -> DecodeError */
    PyObject *bounds;       /* bounds(value): raises DecodeError */
    Py_ssize_t header;
    Py_ssize_t max_bytes;
    Py_ssize_t max_values;
} Reader;

typedef struct {
    const unsigned char *b;
    Py_ssize_t n;
    Py_ssize_t p;
    PyObject *data;
} State;

static PyObject *unpack_float;   /* struct.Struct("<f").unpack_from: its error for a short buffer */
static PyObject *unpack_double;
static PyObject *ns_name;

static const char SHORT[] = "the payload ends inside a value (or a length is negative)";

/* ---- errors, as the Python reader raises them ---------------------------------------------- */

static void index_error(void) { PyErr_SetString(PyExc_IndexError, "index out of range"); }

static void short_error(void) { PyErr_SetString(PyExc_ValueError, SHORT); }

static void too_wide(void) { PyErr_SetString(PyExc_ValueError, "a varint longer than 10 bytes"); }

static void bad_index(const char *what, int64_t index, PyObject *big) {
    if (big != NULL)
        PyErr_Format(PyExc_ValueError, "%s index %S out of range", what, big);
    else
        PyErr_Format(PyExc_ValueError, "%s index %lld out of range", what, (long long)index);
}

/* struct's own error (its wording names the offset and sizes) for a float past the end. */
static void float_error(PyObject *unpack, PyObject *data, Py_ssize_t p) {
    PyObject *result = PyObject_CallFunction(unpack, "On", data, p);
    if (result != NULL) {  /* cannot happen: the caller saw the bytes missing */
        Py_DECREF(result);
        short_error();
    }
}

/* ---- varints --------------------------------------------------------------------------------- */

/* A zigzag varint of up to 10 bytes (70 bits, as the Python reader reads them): 0 with the value
 * in *out when it fits 64 bits, 1 with a new Python int in *big when it does not, -1 on error
 * (the position where the Python reader stands when it raises). */
static int read_long(State *s, int64_t *out, PyObject **big) {
    if (s->p >= s->n) { index_error(); return -1; }
    uint64_t byte = s->b[s->p++];
    if (byte < 0x80) {
        *out = (int64_t)(byte >> 1) ^ -(int64_t)(byte & 1);
        return 0;
    }
    uint64_t raw = byte & 0x7F;
    for (int shift = 7; shift < 63; shift += 7) {
        if (s->p >= s->n) { index_error(); return -1; }
        byte = s->b[s->p++];
        raw |= (byte & 0x7F) << shift;
        if (byte < 0x80) {
            *out = (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
            return 0;
        }
    }
    if (s->p >= s->n) { index_error(); return -1; }
    byte = s->b[s->p++];
    if (byte >= 0x80) { too_wide(); return -1; }
    if (byte <= 1) {
        raw |= byte << 63;
        *out = (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
        return 0;
    }
    /* 65 to 70 bits: (byte << 62 | raw >> 1), negated minus one when raw is odd */
    PyObject *high = PyLong_FromUnsignedLongLong(byte), *shift = PyLong_FromLong(62);
    PyObject *low = PyLong_FromUnsignedLongLong(raw >> 1), *value = NULL, *shifted = NULL;
    if (high != NULL && shift != NULL && low != NULL && (shifted = PyNumber_Lshift(high, shift)) != NULL)
        value = PyNumber_Or(shifted, low);
    Py_XDECREF(high); Py_XDECREF(shift); Py_XDECREF(low); Py_XDECREF(shifted);
    if (value != NULL && (raw & 1)) {
        PyObject *inverted = PyNumber_Invert(value);
        Py_DECREF(value);
        value = inverted;
    }
    if (value == NULL) return -1;
    *big = value;
    return 1;
}

/* The bytes of a string or bytes value: its start in *start and length in *size, the position
 * past them. Errors stand at the length's first byte, as in the Python reader. */
static int read_span(State *s, Py_ssize_t *start, Py_ssize_t *size) {
    Py_ssize_t at = s->p;
    if (at >= s->n) { index_error(); return -1; }
    uint64_t raw = s->b[at];
    Py_ssize_t pos = at + 1;
    if (raw > 127) {
        raw &= 0x7F;
        int shift;
        for (shift = 7; shift < 70; shift += 7) {
            if (pos >= s->n) { index_error(); return -1; }
            uint64_t byte = s->b[pos++];
            if (shift == 63) {
                if (byte >= 0x80) { too_wide(); return -1; }
                if (byte > 1) { short_error(); return -1; }  /* over 64 bits: past any end */
                raw |= byte << 63;
                break;
            }
            raw |= (byte & 0x7F) << shift;
            if (byte < 0x80) break;
        }
    }
    if ((raw & 1) || (raw >> 1) > (uint64_t)(s->n - pos)) { short_error(); return -1; }
    *start = pos;
    *size = (Py_ssize_t)(raw >> 1);
    s->p = pos + *size;
    return 0;
}

/* ---- timestamps ------------------------------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/* The Timestamp of `units` (the base value), built here when its nanoseconds fit 64 bits (years
 * 1678 to 2262), else by the Python conversion (which also refuses what is out of CEL's range). */
static PyObject *timestamp(Node *node, int64_t units, PyObject *base) {
    int64_t ns;
    if (__builtin_mul_overflow(units, (int64_t)node->multiplier, &ns))
        return PyObject_CallOneArg(node->object, base);
    int64_t nanos = ns % 1000000000;  /* floored, without a product that could overflow */
    int64_t seconds = ns / 1000000000 - (nanos < 0);
    int64_t micros = (nanos < 0 ? nanos + 1000000000 : nanos) / 1000;
    int64_t days = floor_div(seconds, 86400), of_day = seconds - days * 86400;
    /* civil_from_days (Howard Hinnant's algorithm): the proleptic Gregorian date */
    int64_t z = days + 719468, era = floor_div(z, 146097);
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = yoe + era * 400 + (month <= 2);
    PyObject *ts = PyDateTimeAPI->DateTime_FromDateAndTime(
        (int)year, (int)month, (int)day, (int)(of_day / 3600), (int)(of_day / 60 % 60), (int)(of_day % 60),
        (int)micros, node->tz, (PyTypeObject *)node->type);
    if (ts == NULL) return NULL;
    PyObject *exact = PyLong_FromLongLong(ns);
    if (exact == NULL || PyObject_SetAttr(ts, ns_name, exact) < 0) {
        Py_XDECREF(exact);
        Py_DECREF(ts);
        return NULL;
    }
    Py_DECREF(exact);
    return ts;
}

/* ---- values ---------------------------------------------------------------------------------- */

static PyObject *read_value(Node *node, State *s);

static PyObject *read_text(State *s) {
    Py_ssize_t start, size;
    if (read_span(s, &start, &size) < 0) return NULL;
    return PyUnicode_DecodeUTF8((const char *)s->b + start, size, NULL);
}

/* A block count: 0 ends the array or map; a negative count is followed by the block's byte size.
 * Counts past 64 bits saturate (the items then run into the end first). */
static int read_count(State *s, uint64_t *count) {
    int64_t value = 0;
    PyObject *big = NULL;
    int kind = read_long(s, &value, &big);
    if (kind < 0) return -1;
    int negative;
    if (kind == 1) {
        int overflow = 0;
        (void)PyLong_AsLongLongAndOverflow(big, &overflow);  /* its sign */
        Py_DECREF(big);
        if (PyErr_Occurred()) return -1;
        negative = overflow < 0;
        *count = UINT64_MAX;
    } else {
        negative = value < 0;
        *count = negative ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    }
    if (negative) {
        big = NULL;
        kind = read_long(s, &value, &big);  /* the block's size in bytes, not needed */
        Py_XDECREF(big);
        if (kind < 0) return -1;
    }
    return 0;
}

/* The items of an array (into `list`) or a map (into `dict`), block by block. */
static int read_items(Node *item, State *s, PyObject *list, PyObject *dict) {
    uint64_t count;
    if (read_count(s, &count) < 0) return -1;
    while (count != 0) {
        for (uint64_t i = 0; i < count; i++) {
            Py_ssize_t before = s->p;
            PyObject *key = NULL;
            if (dict != NULL && (key = read_text(s)) == NULL) return -1;
            PyObject *value = read_value(item, s);
            if (value == NULL) { Py_XDECREF(key); return -1; }
            if (s->p == before) {  /* items that take no bytes have no program; never loop on them */
                Py_XDECREF(key);
                Py_DECREF(value);
                PyErr_SetString(PyExc_ValueError, "an array item of no bytes");
                return -1;
            }
            int failed = dict != NULL ? PyDict_SetItem(dict, key, value) : PyList_Append(list, value);
            Py_XDECREF(key);
            Py_DECREF(value);
            if (failed < 0) return -1;
        }
        if (read_count(s, &count) < 0) return -1;
    }
    return 0;
}

static PyObject *read_value(Node *node, State *s) {
    int64_t value;
    PyObject *big = NULL, *result;
    int kind;
    Py_ssize_t start, size;
    switch (node->op) {
    case OP_NULL:
        Py_RETURN_NONE;
    case OP_BOOLEAN:
        if (s->p >= s->n) { index_error(); return NULL; }
        return PyBool_FromLong(s->b[s->p++] != 0);
    case OP_LONG:
        kind = read_long(s, &value, &big);
        if (kind < 0) return NULL;
        return kind == 1 ? big : PyLong_FromLongLong(value);
    case OP_FLOAT:
    case OP_DOUBLE: {
        Py_ssize_t width = node->op == OP_FLOAT ? 4 : 8;
        if (s->n - s->p < width) { float_error(width == 4 ? unpack_float : unpack_double, s->data, s->p); return NULL; }
        const char *at = (const char *)s->b + s->p;
        double d = width == 4 ? PyFloat_Unpack4(at, 1) : PyFloat_Unpack8(at, 1);
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        s->p += width;
        return PyFloat_FromDouble(d);
    }
    case OP_STRING:
        return read_text(s);
    case OP_BYTES:
        if (read_span(s, &start, &size) < 0) return NULL;
        return PyBytes_FromStringAndSize((const char *)s->b + start, size);
    case OP_FIXED:
        if (node->size > s->n - s->p) { short_error(); return NULL; }
        result = PyBytes_FromStringAndSize((const char *)s->b + s->p, node->size);
        s->p += node->size;
        return result;
    case OP_ENUM:
    case OP_UNION: {
        kind = read_long(s, &value, &big);
        if (kind < 0) return NULL;
        const char *what = node->op == OP_ENUM ? "enum" : "union";
        if (kind == 1 || value < 0 || value >= node->size) {
            bad_index(what, value, big);
            Py_XDECREF(big);
            return NULL;
        }
        if (node->op == OP_UNION) return read_value(node->children[value], s);
        result = PyTuple_GET_ITEM(node->object, value);
        Py_INCREF(result);
        return result;
    }
    case OP_RECORD: {
        PyObject *fields = _PyDict_NewPresized(node->size);
        if (fields == NULL) return NULL;
        for (Py_ssize_t i = 0; i < node->size; i++) {
            PyObject *field = read_value(node->children[i], s);
            if (field == NULL || PyDict_SetItem(fields, PyTuple_GET_ITEM(node->object, i), field) < 0) {
                Py_XDECREF(field);
                Py_DECREF(fields);
                return NULL;
            }
            Py_DECREF(field);
        }
        return fields;
    }
    case OP_ARRAY:
    case OP_MAP: {
        int is_map = node->op == OP_MAP;
        result = is_map ? PyDict_New() : PyList_New(0);
        if (result == NULL) return NULL;
        if (read_items(node->children[0], s, is_map ? NULL : result, is_map ? result : NULL) < 0) {
            Py_DECREF(result);
            return NULL;
        }
        return result;
    }
    case OP_CONVERT: {
        PyObject *base = read_value(node->children[0], s);
        if (base == NULL) return NULL;
        result = PyObject_CallOneArg(node->object, base);
        Py_DECREF(base);
        return result;
    }
    case OP_TIMESTAMP: {
        kind = read_long(s, &value, &big);
        if (kind < 0) return NULL;
        if (kind == 1) {
            result = PyObject_CallOneArg(node->object, big);
            Py_DECREF(big);
            return result;
        }
        PyObject *base = PyLong_FromLongLong(value);
        if (base == NULL) return NULL;
        result = timestamp(node, value, base);
        Py_DECREF(base);
        return result;
    }
    default:
        PyErr_SetString(PyExc_SystemError, "unknown Avro program node");
        return NULL;
    }
}

/* ---- programs -------------------------------------------------------------------------------- */

static void free_node(Node *node) {
    if (node == NULL) return;
    if (node->children != NULL) {
        Py_ssize_t count = node->op == OP_RECORD || node->op == OP_UNION ? node->size : 1;
        for (Py_ssize_t i = 0; i < count; i++) free_node(node->children[i]);
        PyMem_Free(node->children);
    }
    PyMem_Free(node);
}

static int program_error(const char *message) {
    PyErr_Format(PyExc_ValueError, "not an Avro read program: %s", message);
    return -1;
}

static Node *build(PyObject *program, int depth);

/* The children of a node from the tuple `programs` (`count` of them). */
static int build_children(Node *node, PyObject *programs, Py_ssize_t count, int depth) {
    if (!PyTuple_Check(programs) || PyTuple_GET_SIZE(programs) != count) {
        program_error("a node's children");
        return -1;
    }
    node->children = PyMem_Calloc(count ? count : 1, sizeof(Node *));
    if (node->children == NULL) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < count; i++)
        if ((node->children[i] = build(PyTuple_GET_ITEM(programs, i), depth + 1)) == NULL) return -1;
    return 0;
}

/* A node from its tuple: (op, ...) as avro_program.py writes them. */
static Node *build(PyObject *program, int depth) {
    if (depth > MAX_PROGRAM_DEPTH) { program_error("nested too deep"); return NULL; }
    if (!PyTuple_Check(program) || PyTuple_GET_SIZE(program) < 1) { program_error("a node"); return NULL; }
    long op = PyLong_AsLong(PyTuple_GET_ITEM(program, 0));
    if (op == -1 && PyErr_Occurred()) return NULL;
    if (op < 0 || op >= OP_COUNT) { program_error("an operation"); return NULL; }
    Py_ssize_t arity = PyTuple_GET_SIZE(program) - 1;
    static const Py_ssize_t ARITY[OP_COUNT] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 1, 1, 1, 2, 4};
    if (arity != ARITY[op]) { program_error("a node's arity"); return NULL; }
    Node *node = PyMem_Calloc(1, sizeof(Node));
    if (node == NULL) { PyErr_NoMemory(); return NULL; }
    node->op = (int)op;
    PyObject *first = arity > 0 ? PyTuple_GET_ITEM(program, 1) : NULL;
    switch (op) {
    case OP_FIXED:
        node->size = PyLong_AsSsize_t(first);
        if (node->size == -1 && PyErr_Occurred()) goto fail;
        if (node->size < 0) { program_error("a fixed size"); goto fail; }
        break;
    case OP_ENUM:
        if (!PyTuple_Check(first)) { program_error("enum symbols"); goto fail; }
        node->object = first;
        node->size = PyTuple_GET_SIZE(first);
        break;
    case OP_RECORD:
        if (!PyTuple_Check(first)) { program_error("field names"); goto fail; }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(first); i++)
            if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(first, i))) { program_error("a field name"); goto fail; }
        node->object = first;
        node->size = PyTuple_GET_SIZE(first);
        if (build_children(node, PyTuple_GET_ITEM(program, 2), node->size, depth) < 0) goto fail;
        break;
    case OP_UNION:
        if (!PyTuple_Check(first)) { program_error("union branches"); goto fail; }
        node->size = PyTuple_GET_SIZE(first);
        if (build_children(node, first, node->size, depth) < 0) goto fail;
        break;
    case OP_ARRAY:
    case OP_MAP:
    case OP_CONVERT:
        if (op == OP_CONVERT) {
            if (!PyCallable_Check(first)) { program_error("a conversion"); goto fail; }
            node->object = first;
        }
        {
            PyObject *base = PyTuple_GetSlice(program, arity, arity + 1);
            if (base == NULL) goto fail;
            int failed = build_children(node, base, 1, depth);
            Py_DECREF(base);
            if (failed < 0) goto fail;
        }
        break;
    case OP_TIMESTAMP:  /* (op, nanoseconds per unit, fallback, Timestamp type, UTC) */
        node->multiplier = PyLong_AsLongLong(first);
        if (node->multiplier == -1 && PyErr_Occurred()) goto fail;
        node->object = PyTuple_GET_ITEM(program, 2);
        node->type = PyTuple_GET_ITEM(program, 3);
        node->tz = PyTuple_GET_ITEM(program, 4);
        if (node->multiplier < 1 || !PyCallable_Check(node->object) || !PyType_Check(node->type)
                || !PyType_IsSubtype((PyTypeObject *)node->type, PyDateTimeAPI->DateTimeType)
                || !PyTZInfo_Check(node->tz)) {
            program_error("a timestamp");
            goto fail;
        }
        break;
    default:
        break;
    }
    return node;
fail:
    free_node(node);
    return NULL;
}

/* ---- the Reader type ------------------------------------------------------------------------- */

static int Reader_init(Reader *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"program", "header", "max_bytes", "max_values", "failure", "left_over",
                            "too_long", "bounds", NULL};
    PyObject *program, *failure, *left_over, *too_long, *bounds;
    Py_ssize_t header, max_bytes, max_values;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OnnnOOOO:Reader", names, &program, &header, &max_bytes,
                                     &max_values, &failure, &left_over, &too_long, &bounds))
        return -1;
    if (self->root != NULL) { PyErr_SetString(PyExc_TypeError, "a Reader is made once"); return -1; }
    if (header < 0 || max_bytes < 0 || max_values < 0 || max_bytes > PY_SSIZE_T_MAX - header
            || max_values > PY_SSIZE_T_MAX - header) {
        PyErr_SetString(PyExc_ValueError, "sizes out of range");
        return -1;
    }
    Node *root = build(program, 0);
    if (root == NULL) return -1;
    self->root = root;
    self->header = header;
    self->max_bytes = max_bytes;
    self->max_values = max_values;
    Py_INCREF(program); self->program = program;
    Py_INCREF(failure); self->failure = failure;
    Py_INCREF(left_over); self->left_over = left_over;
    Py_INCREF(too_long); self->too_long = too_long;
    Py_INCREF(bounds); self->bounds = bounds;
    return 0;
}

static void Reader_dealloc(Reader *self) {
    free_node(self->root);
    Py_XDECREF(self->program);
    Py_XDECREF(self->failure);
    Py_XDECREF(self->left_over);
    Py_XDECREF(self->too_long);
    Py_XDECREF(self->bounds);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Raise failure(error, position) for the error set (or `error`, a new reference), from None. */
static PyObject *fail(Reader *self, PyObject *error, Py_ssize_t position) {
    if (error == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) return NULL;  /* KeyboardInterrupt and the like */
        PyObject *type, *traceback;
        PyErr_Fetch(&type, &error, &traceback);
        PyErr_NormalizeException(&type, &error, &traceback);
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        if (error == NULL) return NULL;
    }
    PyObject *decode_error = PyObject_CallFunction(self->failure, "On", error, position);
    Py_DECREF(error);
    if (decode_error == NULL) return NULL;
    if (PyExceptionInstance_Check(decode_error)) {
        PyException_SetCause(decode_error, NULL);  /* `from None` */
        PyErr_SetObject((PyObject *)Py_TYPE(decode_error), decode_error);
    } else {
        PyErr_SetString(PyExc_TypeError, "failure() gave no exception");
    }
    Py_DECREF(decode_error);
    return NULL;
}

static PyObject *Reader_call(Reader *self, PyObject *args, PyObject *kwargs) {
    PyObject *data;
    if (self->root == NULL) { PyErr_SetString(PyExc_TypeError, "an unmade Reader"); return NULL; }
    if (!PyArg_ParseTuple(args, "S:read", &data)) return NULL;
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "read() takes no keyword arguments");
        return NULL;
    }
    State s = {(const unsigned char *)PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), self->header, data};
    if (s.n > self->header + self->max_bytes) {
        PyObject *error = PyObject_CallFunction(self->too_long, "n", s.n);
        if (error != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(error), error);
            Py_DECREF(error);
        }
        return NULL;
    }
    PyObject *value = read_value(self->root, &s);
    if (value == NULL) return fail(self, NULL, s.p - self->header);
    if (s.p != s.n) {
        Py_DECREF(value);
        PyObject *error;
        if (s.p < s.n) {
            error = PyObject_CallFunction(self->left_over, "n", s.n - s.p);
        } else {
            error = PyObject_CallFunction(PyExc_ValueError, "s", SHORT);
        }
        if (error == NULL) return NULL;
        return fail(self, error, s.p - self->header);
    }
    if (s.n > self->header + self->max_values) {
        PyObject *checked = PyObject_CallOneArg(self->bounds, value);
        if (checked == NULL) { Py_DECREF(value); return NULL; }
        Py_DECREF(checked);
    }
    return value;
}

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "provisioner.formats._avroc.Reader",
    .tp_doc = PyDoc_STR("Reader(program, header, max_bytes, max_values, failure, left_over, too_long, bounds):"
                        " reads whole records (bytes) with an Avro read program."),
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_call = (ternaryfunc)Reader_call,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_avroc", "Avro read programs interpreted in C (see avro_program.py).", -1, NULL,
};

PyMODINIT_FUNC PyInit__avroc(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *structs = PyImport_ImportModule("struct");
    if (structs == NULL) return NULL;
    PyObject *f = PyObject_CallMethod(structs, "Struct", "s", "<f");
    PyObject *d = PyObject_CallMethod(structs, "Struct", "s", "<d");
    Py_DECREF(structs);
    if (f == NULL || d == NULL) { Py_XDECREF(f); Py_XDECREF(d); return NULL; }
    unpack_float = PyObject_GetAttrString(f, "unpack_from");
    unpack_double = PyObject_GetAttrString(d, "unpack_from");
    Py_DECREF(f);
    Py_DECREF(d);
    ns_name = PyUnicode_InternFromString("ns");
    if (unpack_float == NULL || unpack_double == NULL || ns_name == NULL) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
