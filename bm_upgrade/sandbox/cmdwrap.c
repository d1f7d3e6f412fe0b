/*
 * The sandbox hosts' sshd ForceCommand, compiled: the same journal as cmdwrap.py, without a
 * Python start-up per command (~15 ms of the ~20 ms the Python wrapper costs here; a sandbox
 * upgrade runs a few hundred commands). cmdwrap.py stays the reference and the fallback on
 * machines without a C compiler; tests/sandbox/test_cmdwrap.py checks both write the same
 * lines.
 *
 *   cmdwrap --host ADDR [--journal FILE] [--scan-root DIR] --python PY --pyc CMDWRAP.PYC
 *
 * 1. appends `command` {host, command} to the journal (one O_APPEND write) BEFORE running it;
 * 2. runs it with /bin/sh -c, stdin/stdout/stderr inherited, and exits with its exit code
 *    (128 + N when a signal N killed it), as sshd itself would;
 * 3. afterwards journals `kit_unpacked` {host, path, version} for each kit root that appeared
 *    under the scan root; the rare `dirty_backup` deletions are handed to cmdwrap.py
 *    (`--deleted PATH...`), which knows which server a data folder belongs to.
 * The sftp subsystem is exec'ed unchanged and not journaled (unless the drop-upload fault's
 * marker is in the scan root: then cmdwrap.py serves the session, see its sftp_dropping); no
 * command gets a login shell.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SCAN_DEPTH 6
#define KIT_MARKER "server/lib/tc-version.properties"
#define BACKUP_PARENT "dirty-objectdb-backup"
#define BACKUP_PREFIX "dirty-objectdb-"

extern char **environ;

/* -- growable buffers and lists ------------------------------------------------------ */
typedef struct { char *data; size_t len, cap; } Buf;

static void buf_grow(Buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) cap *= 2;
    b->data = realloc(b->data, cap);
    if (!b->data) { perror("cmdwrap"); exit(255); }
    b->cap = cap;
}

static void buf_add(Buf *b, const char *s, size_t n) {
    buf_grow(b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_str(Buf *b, const char *s) { buf_add(b, s, strlen(s)); }

typedef struct { char **items; size_t len, cap; } List;

static void list_add(List *l, char *s) {
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = realloc(l->items, l->cap * sizeof(char *));
        if (!l->items) { perror("cmdwrap"); exit(255); }
    }
    l->items[l->len++] = s;
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int list_has(const List *sorted, const char *s) {
    return bsearch(&s, sorted->items, sorted->len, sizeof(char *), by_string) != NULL;
}

/* -- JSON, exactly as cmdwrap.json_string -------------------------------------------- */
/* Length of the valid UTF-8 sequence at s (0: invalid), as Python's strict decoder sees it. */
static size_t utf8_len(const unsigned char *s, size_t left) {
    unsigned c = s[0];
    size_t n;
    unsigned min, cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; min = 0x80; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; min = 0x800; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; min = 0x10000; cp = c & 0x07; }
    else return 0;
    if (left < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* A JSON string literal; bytes that are not UTF-8 come out as Python's surrogateescape
 * decoding turns them into JSON (\udcXX), like the Python wrapper reading the environment. */
static void json_string(Buf *out, const char *text) {
    const unsigned char *s = (const unsigned char *)text;
    size_t left = strlen(text);
    char esc[8];
    buf_str(out, "\"");
    while (left) {
        unsigned c = *s;
        if (c == '"') buf_str(out, "\\\"");
        else if (c == '\\') buf_str(out, "\\\\");
        else if (c == '\n') buf_str(out, "\\n");
        else if (c == '\r') buf_str(out, "\\r");
        else if (c == '\t') buf_str(out, "\\t");
        else if (c == '\b') buf_str(out, "\\b");
        else if (c == '\f') buf_str(out, "\\f");
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); buf_str(out, esc); }
        else if (c < 0x80) buf_add(out, (const char *)s, 1);
        else {
            size_t n = utf8_len(s, left);
            if (n) { buf_add(out, (const char *)s, n); s += n; left -= n; continue; }
            snprintf(esc, sizeof esc, "\\udc%02x", c);
            buf_str(out, esc);
        }
        s++;
        left--;
    }
    buf_str(out, "\"");
}

/* Appends {"t": ..., "event": ..., k1: v1, ...} as one write(2) on an O_APPEND descriptor,
 * so the lines of many writers never mix. */
static void append(const char *journal, const char *event, const char **fields, int n) {
    if (!journal || !*journal) return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char t[64];
    snprintf(t, sizeof t, "{\"t\": %lld.%06ld, \"event\": ", (long long)now.tv_sec,
             now.tv_nsec / 1000);
    Buf line = {0};
    buf_str(&line, t);
    json_string(&line, event);
    for (int i = 0; i + 1 < n; i += 2) {
        buf_str(&line, ", ");
        json_string(&line, fields[i]);
        buf_str(&line, ": ");
        json_string(&line, fields[i + 1]);
    }
    buf_str(&line, "}\n");
    int fd = open(journal, O_WRONLY | O_APPEND | O_CREAT, 0666);
    if (fd >= 0) {
        ssize_t written = write(fd, line.data, line.len);
        (void)written;
        close(fd);
    }
    free(line.data);
}

/* -- the scan, exactly as cmdwrap.scan ------------------------------------------------ */
static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (!p) { perror("cmdwrap"); exit(255); }
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static char *strip(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n' || *s == '\f' || *s == '\v') s++;
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n\f\v", s[n - 1])) s[--n] = '\0';
    return s;
}

static char *kit_version(const char *marker) {
    FILE *fh = fopen(marker, "r");
    char *found = NULL, *line = NULL;
    size_t cap = 0;
    if (!fh) return strdup("");
    while (!found && getline(&line, &cap, fh) >= 0) {
        char *eq = strchr(line, '=');
        char *value = eq ? eq + 1 : line + strlen(line);
        if (eq) *eq = '\0';
        if (strcmp(strip(line), "version") == 0) found = strdup(strip(value));
    }
    free(line);
    fclose(fh);
    return found ? found : strdup("");
}

static int is_dir_entry(const char *folder, const struct dirent *entry) {
    if (entry->d_type == DT_DIR) return 1;
    if (entry->d_type != DT_UNKNOWN) return 0;
    struct stat st;
    char *path = join(folder, entry->d_name);
    int dir = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(path);
    return dir;
}

/* Kit roots ("path\tversion", sorted) and dirty backup folders (sorted) under root. */
static void scan(const char *root, List *kits, List *backups) {
    if (!root || !*root) return;
    List todo = {0};
    List levels = {0};
    list_add(&todo, strdup(root));
    list_add(&levels, (char *)0);
    while (todo.len) {
        char *folder = todo.items[--todo.len];
        long level = (long)levels.items[--levels.len];
        DIR *dir = opendir(folder);
        if (!dir) { free(folder); continue; }
        List entries = {0};
        int has_server = 0;
        struct dirent *entry;
        while ((entry = readdir(dir))) {
            if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
            if (!strcmp(entry->d_name, "server")) has_server = 1;
            if (is_dir_entry(folder, entry)) list_add(&entries, strdup(entry->d_name));
        }
        closedir(dir);
        struct stat st;
        char *marker = join(folder, KIT_MARKER);
        if (has_server && stat(marker, &st) == 0 && S_ISREG(st.st_mode)) {
            char *version = kit_version(marker);
            char *item = malloc(strlen(folder) + strlen(version) + 2);
            sprintf(item, "%s\t%s", folder, version);
            list_add(kits, item);
            free(version);
        } else {
            const char *base = strrchr(folder, '/');
            int in_backup = !strcmp(base ? base + 1 : folder, BACKUP_PARENT);
            for (size_t i = 0; i < entries.len; i++) {
                char *path = join(folder, entries.items[i]);
                if (in_backup && !strncmp(entries.items[i], BACKUP_PREFIX,
                                          strlen(BACKUP_PREFIX))) {
                    list_add(backups, path);
                } else if (level < SCAN_DEPTH) {
                    list_add(&todo, path);
                    list_add(&levels, (char *)(level + 1));
                } else {
                    free(path);
                }
            }
        }
        free(marker);
        for (size_t i = 0; i < entries.len; i++) free(entries.items[i]);
        free(entries.items);
        free(folder);
    }
    free(todo.items);
    free(levels.items);
    qsort(kits->items, kits->len, sizeof(char *), by_string);
    qsort(backups->items, backups->len, sizeof(char *), by_string);
}

/* -- running ------------------------------------------------------------------------- */
static int wait_exit_code(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return 255;
    }
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static int run(const char *command) {
    pid_t pid = fork();
    if (pid < 0) { perror("cmdwrap: fork"); return 255; }
    if (pid == 0) {
        /* A host without ForceCommand would not have it: the tool must not see the wrapper. */
        unsetenv("SSH_ORIGINAL_COMMAND");
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        perror("cmdwrap: /bin/sh");
        _exit(127);
    }
    return wait_exit_code(pid);
}

static int is_sftp(const char *command) {
    const char *end = strchr(command, ' ');
    size_t n = end ? (size_t)(end - command) : strlen(command);
    char *first = strndup(command, n);
    const char *base = strrchr(first, '/');
    int yes = !strcmp(base ? base + 1 : first, "sftp-server") && access(first, X_OK) == 0;
    free(first);
    return yes;
}

static void exec_words(const char *command) {
    char *copy = strdup(command);
    List words = {0};
    for (char *w = strtok(copy, " "); w; w = strtok(NULL, " ")) list_add(&words, w);
    list_add(&words, NULL);
    execv(words.items[0], words.items);
    perror("cmdwrap: exec");
    exit(255);
}

int main(int argc, char **argv) {
    const char *host = "", *journal = "", *scan_root = "", *python = "", *pyc = "";
    for (int i = 1; i + 1 < argc; i++) {
        const char **slot = !strcmp(argv[i], "--host") ? &host
            : !strcmp(argv[i], "--journal") ? &journal
            : !strcmp(argv[i], "--scan-root") ? &scan_root
            : !strcmp(argv[i], "--python") ? &python
            : !strcmp(argv[i], "--pyc") ? &pyc : NULL;
        if (slot) *slot = argv[++i];
    }
    const char *command = getenv("SSH_ORIGINAL_COMMAND");
    if (!command) {
        const char *shell = getenv("SHELL");
        if (!shell || !*shell) shell = "/bin/sh";
        const char *base = strrchr(shell, '/');
        char *login = malloc(strlen(shell) + 2);
        sprintf(login, "-%s", base ? base + 1 : shell);
        execl(shell, login, (char *)NULL);
        perror("cmdwrap: shell");
        return 255;
    }
    if (is_sftp(command)) {
        /* The drop-upload fault (rare): cmdwrap.py relays this session and cuts it. */
        char marker[4096];
        snprintf(marker, sizeof marker, "%s/.sandbox-drop-upload", scan_root);
        if (*python && *pyc && *scan_root && access(marker, F_OK) == 0) {
            execl(python, python, "-S", "-I", pyc, "--host", host, "--journal", journal,
                  "--scan-root", scan_root, (char *)NULL);
            perror("cmdwrap: python");
        }
        exec_words(command);
    }
    const char *fields[] = {"host", host, "command", command};
    append(journal, "command", fields, 4);
    List kits_before = {0}, backups_before = {0}, kits_after = {0}, backups_after = {0};
    scan(scan_root, &kits_before, &backups_before);
    int code = run(command);
    scan(scan_root, &kits_after, &backups_after);
    for (size_t i = 0; i < kits_after.len; i++) {
        if (list_has(&kits_before, kits_after.items[i])) continue;
        char *path = strdup(kits_after.items[i]);
        char *tab = strrchr(path, '\t');
        *tab = '\0';
        int known = 0;  /* a kit root seen before (with another version) is not new */
        for (size_t j = 0; j < kits_before.len && !known; j++) {
            size_t n = strlen(path);
            known = !strncmp(kits_before.items[j], path, n) && kits_before.items[j][n] == '\t';
        }
        if (!known) {
            const char *kit[] = {"host", host, "path", path, "version", tab + 1};
            append(journal, "kit_unpacked", kit, 6);
        }
        free(path);
    }
    List deleted = {0};
    list_add(&deleted, (char *)python);
    list_add(&deleted, "-S");
    list_add(&deleted, "-I");
    list_add(&deleted, (char *)pyc);
    list_add(&deleted, "--host");
    list_add(&deleted, (char *)host);
    list_add(&deleted, "--journal");
    list_add(&deleted, (char *)journal);
    list_add(&deleted, "--scan-root");
    list_add(&deleted, (char *)scan_root);
    list_add(&deleted, "--deleted");
    size_t fixed = deleted.len;
    for (size_t i = 0; i < backups_before.len; i++) {
        if (!list_has(&backups_after, backups_before.items[i]))
            list_add(&deleted, backups_before.items[i]);
    }
    if (deleted.len > fixed && *python && *pyc && *journal) {
        list_add(&deleted, NULL);
        pid_t pid = fork();
        if (pid == 0) {
            unsetenv("SSH_ORIGINAL_COMMAND");
            execv(python, deleted.items);
            _exit(127);
        }
        if (pid > 0) wait_exit_code(pid);
    }
    return code;
}
