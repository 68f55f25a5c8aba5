/* page.h - the live page (page.html), built into the binary by page.c. */
#ifndef DATI_PAGE_H
#define DATI_PAGE_H

/* The page, NUL-terminated; its line PAGE_TABLE_MARK is where the server
 * puts the counters as tables (the page without JavaScript). */
extern const char dati_page_html[];
#define PAGE_TABLE_MARK "<!--DATI-TABLE-->"

#endif
