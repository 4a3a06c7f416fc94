/* mgpy._speedups: optional C helpers for the WebSocket core.
 *
 * apply_mask(data, mask) -> bytes
 *     XOR `data` (any contiguous buffer: bytes, bytearray, memoryview) with the
 *     4-byte `mask` repeated (RFC 6455 5.3).  The same operation masks and
 *     unmasks.  mgpy/proto/ws.py falls back to a pure-Python version when this
 *     module is not built; both must give identical results.
 *
 * Strategy: XOR 16 bytes per step with SSE2 where the compiler offers it,
 * else 8 bytes per step through a uint64_t; memcpy keeps loads and stores
 * alignment-safe (compilers turn them into plain unaligned moves), and the
 * tail is finished byte by byte.  The mask pattern is replicated into the
 * wide word once, so the loop has no per-byte index arithmetic.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if !defined(MGPY_NO_SSE2) && \
    (defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2))
#include <emmintrin.h>
#define MGPY_HAVE_SSE2 1
#endif

static void
xor_mask(const unsigned char *src, unsigned char *dst, Py_ssize_t n,
         const unsigned char mask[4])
{
    Py_ssize_t i = 0;
    unsigned char pattern[16];
    for (int k = 0; k < 16; k++) {
        pattern[k] = mask[k & 3];
    }
#ifdef MGPY_HAVE_SSE2
    if (n >= 16) {
        __m128i m = _mm_loadu_si128((const __m128i *)pattern);
        for (; i + 64 <= n; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
            _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, m));
            _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_xor_si128(b, m));
            _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_xor_si128(c, m));
            _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_xor_si128(d, m));
        }
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
            _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(a, m));
        }
    }
#endif
    {
        uint64_t m64, w;
        memcpy(&m64, pattern, 8);
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, src + i, 8);
            w ^= m64;
            memcpy(dst + i, &w, 8);
        }
    }
    /* i is a multiple of 4 here, so the pattern restarts at mask[0]. */
    for (; i < n; i++) {
        dst[i] = src[i] ^ mask[i & 3];
    }
}

PyDoc_STRVAR(apply_mask_doc,
"apply_mask(data, mask) -> bytes\n\n"
"Return data XOR-ed with the 4-byte mask repeated (RFC 6455 5.3).");

static PyObject *
apply_mask(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data, mask;
    PyObject *out = NULL;

    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "apply_mask() takes exactly 2 arguments");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &mask, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    if (mask.len != 4) {
        PyErr_SetString(PyExc_ValueError, "mask must contain 4 bytes");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, data.len);
    if (out == NULL) {
        goto done;
    }
    xor_mask((const unsigned char *)data.buf,
             (unsigned char *)PyBytes_AS_STRING(out), data.len,
             (const unsigned char *)mask.buf);
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef speedups_methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_FASTCALL, apply_mask_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "mgpy._speedups",
    "Optional C helpers for mgpy (WebSocket masking).",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
