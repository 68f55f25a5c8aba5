/* main.c - command line and wiring: load the configuration, check it or
 * hand it with the options to reader_run(). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "reader.h"

#define DATI_VERSION "0.1.0"

static void usage(FILE *f)
{
    fputs("Usage: dati [options] -r FILE\n"
          "Deep application traffic inspection: named BPF filters, flows and fields,\n"
          "written as JSON lines.\n\n"
          "  -r, --read FILE     read a pcap or pcapng capture (\"-\" for standard input)\n"
          "  -c, --config FILE   configuration (default: built-in HTTP, DNS, TLS filters)\n"
          "  -t, --threads N     worker threads (default: WORKERS in the config, else 1)\n"
          "  -w, --write FILE    JSON lines to FILE (default: OUTPUT in the config, else stdout)\n"
          "      --cpus N        plan threads for N CPUs (default: those dati may run on)\n"
          "      --check         check the configuration and exit (0 when valid)\n"
          "      --dump-config   print the built-in configuration and exit\n"
          "  -q, --quiet         no statistics on stderr\n"
          "  -v, --verbose       more messages\n"
          "      --no-progress   no progress line, even on a terminal\n"
          "  -V, --version       print the version and exit\n"
          "  -h, --help          this help\n",
          f);
}

/* A whole number from 1 to max, or -1 after saying what is wrong. */
static int count_arg(const char *opt, const char *arg, long max)
{
    char *end;
    long n = strtol(arg, &end, 10);
    if (*end || end == arg || n < 1 || n > max) {
        log_error("%s needs a number from 1 to %ld, not '%s'", opt, max, arg);
        return -1;
    }
    return (int)n;
}

/* Keywords that later parts of dati implement: accepted, but say so. */
static int check_unsupported(const struct config *c, int reading_file)
{
    int fatal = 0;
    if (c->nifnames && !reading_file) {
        log_error("%s:%d: IFNAME %s: live capture is not supported yet; read a file with -r",
                  c->path, c->ifname_line, c->ifname[0]);
        fatal = 1;
    }
    for (int i = 0; i < c->nfilters; i++)
        if (c->filter[i].ntaps)
            log_warn("%s:%d: TAP_IF %s: forwarding to tun/tap is not supported yet; ignored",
                     c->path, c->filter[i].tap_line, c->filter[i].tap_if[0]);
    return fatal ? -1 : 0;
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_NO_PROGRESS, OPT_DUMP, OPT_CPUS };
    static const struct option longopts[] = {
        {"read", required_argument, NULL, 'r'},
        {"config", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"write", required_argument, NULL, 'w'},
        {"check", no_argument, NULL, OPT_CHECK},
        {"dump-config", no_argument, NULL, OPT_DUMP},
        {"cpus", required_argument, NULL, OPT_CPUS},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *conf_path = NULL, *input = NULL, *output = NULL;
    int threads = 0, cpus = 0, check = 0, quiet = 0, no_progress = 0, opt;
    while ((opt = getopt_long(argc, argv, "r:c:t:w:qvVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r': input = optarg; break;
        case 'c': conf_path = optarg; break;
        case 'w': output = optarg; break;
        case 't':
            if ((threads = count_arg("-t", optarg, MAX_WORKERS)) < 0)
                return 2;
            break;
        case OPT_CPUS:
            if ((cpus = count_arg("--cpus", optarg, 1024)) < 0)
                return 2;
            break;
        case OPT_CHECK: check = 1; break;
        case OPT_DUMP: fputs(config_default_text, stdout); return 0;
        case 'q': quiet = 1; log_set_level(0); break;
        case 'v': log_set_level(2); break;
        case OPT_NO_PROGRESS: no_progress = 1; break;
        case 'V': puts("dati " DATI_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 2;
    }

    int nerrors = 0;
    struct config *conf = conf_path ? config_load(conf_path, stderr, &nerrors) : config_default();
    if (!conf) {
        if (nerrors < 0)
            log_error("out of memory reading the configuration");
        else
            log_error("%d error%s in %s", nerrors, nerrors == 1 ? "" : "s",
                      conf_path ? conf_path : "the built-in configuration");
        return 2;
    }
    if (check) {
        check_unsupported(conf, 1);
        printf("%s: ok, %d filter%s\n", conf->path, conf->nfilters, conf->nfilters == 1 ? "" : "s");
        config_free(conf);
        return 0;
    }
    if (check_unsupported(conf, input != NULL) < 0 || !input) {
        if (!input)
            log_error("nothing to read: give a capture file with -r (see dati --help)");
        config_free(conf);
        return 2;
    }
    struct run_options ro = {
        .input = input,
        .output = output ? output : conf->output ? conf->output : "-",
        .workers = (unsigned)(threads ? threads : conf->workers ? (int)conf->workers : 1),
        .cpus = (unsigned)cpus,
        .progress = !quiet && !no_progress && isatty(STDERR_FILENO),
        .quiet = quiet,
    };
    int status = reader_run(conf, &ro);
    config_free(conf);
    return status;
}
