/* version.h - dati's version, for -V, the live page and the metrics. */
#ifndef DATI_VERSION_H
#define DATI_VERSION_H

#define DATI_VERSION "0.1.0"

#endif
