/* page.c - page.html as data in the binary: the file is the page as a
 * browser gets it (one file to edit, no generated C), and the assembler
 * includes it. The Makefile makes page.o depend on page.html. */
#include "page.h"

__asm__(".section .rodata\n"
        ".global dati_page_html\n"
        ".type dati_page_html, @object\n"
        "dati_page_html:\n"
        ".incbin \"src/page.html\"\n"
        ".byte 0\n"
        ".size dati_page_html, . - dati_page_html\n"
        ".previous\n");
