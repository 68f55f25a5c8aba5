/* main.c - command line and wiring: load the configuration, check it or
 * hand it with the options to run_main(). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "run.h"

#include "version.h"

static void usage(FILE *f)
{
    fputs("Usage: dati [options] -r FILE\n"
          "       dati [options] -i IFACE [-i IFACE ...]\n"
          "Deep application traffic inspection: named BPF filters, flows and fields,\n"
          "written as JSON lines or into Redis.\n\n"
          "  -r, --read FILE     read a pcap or pcapng capture (\"-\" for standard input)\n"
          "  -i, --interface IF  capture live on IF (repeat for several; default: IFNAME\n"
          "                      lines in the config)\n"
          "  -c, --config FILE   configuration (default: built-in HTTP, DNS, TLS filters)\n"
          "  -t, --threads N     worker threads (default: WORKERS in the config, else 1)\n"
          "  -w, --write FILE    JSON lines to FILE (default: OUTPUT in the config, else stdout)\n"
          "      --cpus N        plan threads for N CPUs (default: those dati may run on)\n"
          "  -D, --daemon        detach and log to syslog (live capture)\n"
          "  -p, --pidfile FILE  write the process id to FILE\n"
          "  -u, --user USER     run as USER once interfaces and devices are open\n"
          "      --check         check the configuration and exit (0 when valid)\n"
          "      --dump-config   print the built-in configuration and exit\n"
          "  -q, --quiet         no statistics on stderr\n"
          "  -v, --verbose       more messages\n"
          "      --no-progress   no progress line, even on a terminal\n"
          "  -V, --version       print the version and exit\n"
          "  -h, --help          this help\n",
          f);
}

/* path made absolute (a daemon works from /): a string to free, or NULL. */
static char *absolute(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *abs = malloc(n);
    if (abs)
        snprintf(abs, n, "%s/%s", cwd, path);
    return abs;
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

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_NO_PROGRESS, OPT_DUMP, OPT_CPUS };
    static const struct option longopts[] = {
        {"read", required_argument, NULL, 'r'},
        {"interface", required_argument, NULL, 'i'},
        {"daemon", no_argument, NULL, 'D'},
        {"pidfile", required_argument, NULL, 'p'},
        {"user", required_argument, NULL, 'u'},
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
    const char *conf_path = NULL, *input = NULL, *output = NULL, *pidfile = NULL, *user = NULL;
    const char *ifnames[CAPTURE_MAX_IFACES];
    int nifnames = 0, daemonize = 0;
    int threads = 0, cpus = 0, check = 0, quiet = 0, no_progress = 0, opt;
    while ((opt = getopt_long(argc, argv, "r:i:c:t:w:Dp:u:qvVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'r': input = optarg; break;
        case 'i':
            if (nifnames == CAPTURE_MAX_IFACES) {
                log_error("at most %d interfaces", CAPTURE_MAX_IFACES);
                return 2;
            }
            ifnames[nifnames++] = optarg;
            break;
        case 'D': daemonize = 1; break;
        case 'p': pidfile = optarg; break;
        case 'u': user = optarg; break;
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
        printf("%s: ok, %d filter%s\n", conf->path, conf->nfilters, conf->nfilters == 1 ? "" : "s");
        config_free(conf);
        return 0;
    }
    if (!input && !nifnames) {   /* the config's IFNAME lines, as in the seed */
        for (int i = 0; i < conf->nifnames && i < CAPTURE_MAX_IFACES; i++)
            ifnames[nifnames++] = conf->ifname[i];
    }
    const char *problem = input && nifnames ? "read a file (-r) or capture live (-i), not both"
                        : !input && !nifnames ? "nothing to read: give a capture file with -r or "
                                                "an interface with -i (see dati --help)"
                        : input && (daemonize || user) ? "-D and -u are for live capture"
                        : daemonize && !conf->redis_line && !output && !conf->output
                            ? "-D detaches from the terminal: give the records a place "
                              "(-w FILE, OUTPUT or Redis)"
                        : NULL;
    if (problem) {
        log_error("%s", problem);
        config_free(conf);
        return 2;
    }
    struct run_options ro = {
        .input = input,
        .ifnames = ifnames,
        .nifnames = input ? 0 : nifnames,
        .output = output ? output : conf->output ? conf->output : "-",
        .config_path = conf_path,
        .workers = (unsigned)(threads ? threads : conf->workers ? (int)conf->workers : 1),
        .cpus = (unsigned)cpus,
        .progress = !quiet && !no_progress && !nifnames && isatty(STDERR_FILENO),
        .quiet = quiet,
        .daemonize = daemonize,
        .pidfile = pidfile,
        .user = user,
    };
    /* a daemon works from /: keep reloading the same file, writing the same pid file */
    char *abs_conf = NULL, *abs_pid = NULL;
    if (daemonize && ((conf_path && !(abs_conf = absolute(conf_path))) ||
                      (pidfile && !(abs_pid = absolute(pidfile))))) {
        log_error("cannot make the paths of -c and -p absolute: %s", strerror(errno));
        free(abs_conf);
        config_free(conf);
        return 2;
    }
    if (abs_conf)
        ro.config_path = abs_conf;
    if (abs_pid)
        ro.pidfile = abs_pid;
    int status = run_main(conf, &ro);
    free(abs_conf);
    free(abs_pid);
    config_free(conf);
    return status;
}
