/*
 * Intrusive circular doubly linked list (inline, header only).
 *
 * A list head is an sm_list_t whose next/prev point to itself when empty.
 * Nodes embed an sm_list_t; SM_CONTAINER_OF gets the enclosing struct back.
 * Not thread-safe: a list belongs to the thread that owns its nodes.
 */
#ifndef SM_CORE_LIST_H
#define SM_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sm_list_s {
    struct sm_list_s *next, *prev;
} sm_list_t;

#define SM_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void sm_list_init(sm_list_t *l)
{
    l->next = l->prev = l;
}

static inline bool sm_list_empty(const sm_list_t *l)
{
    return l->next == l;
}

/* True when node is linked into some list (nodes are init'ed when unlinked). */
static inline bool sm_list_linked(const sm_list_t *n)
{
    return n->next != n;
}

static inline void sm_list_insert_tail(sm_list_t *head, sm_list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void sm_list_insert_head(sm_list_t *head, sm_list_t *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}

/* Unlink n and leave it self-linked (so sm_list_linked() is false). */
static inline void sm_list_remove(sm_list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

static inline sm_list_t *sm_list_first(const sm_list_t *head)
{
    return head->next == head ? NULL : head->next;
}

#define sm_list_foreach_safe(pos, tmp, head)                                                       \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#endif
