/*
 * compiler.h — attributes shared by every module.
 *
 * HERALD_MUSTCHECK marks results that report failure: ignoring one is a
 * compile error under --enable-werror.
 */
#ifndef HERALD_COMPILER_H
#define HERALD_COMPILER_H

#define HERALD_MUSTCHECK __attribute__((warn_unused_result))
#define HERALD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define HERALD_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
