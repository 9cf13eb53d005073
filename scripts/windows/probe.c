/*
 * probe.exe: what the MSI test (scripts/packages/msi.sh) asks the Windows
 * side under Wine, through the Win32 API and independently of our Rust code.
 *
 *   probe.exe qc NAME            the service's configuration as `sc qc`
 *                                prints it, then its recovery actions (as
 *                                `sc qfailure`) and its state. Wine 8's
 *                                sc.exe has no `qc`, `qfailure` or `queryex`.
 *                                Exit 1060 when there is no such service.
 *   probe.exe post PIPE PATH S   HTTP POST PATH with body {} over the named
 *                                pipe PIPE, retrying up to S seconds until
 *                                the pipe exists; prints the response.
 *   probe.exe hold S             sleeps S seconds. Wine ends services when
 *                                the last ordinary process exits: this one
 *                                keeps them alive between msiexec and checks.
 */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(DWORD t)
{
    switch (t & ~SERVICE_INTERACTIVE_PROCESS) {
    case SERVICE_KERNEL_DRIVER: return "KERNEL_DRIVER";
    case SERVICE_FILE_SYSTEM_DRIVER: return "FILE_SYSTEM_DRIVER";
    case SERVICE_WIN32_OWN_PROCESS: return "WIN32_OWN_PROCESS";
    case SERVICE_WIN32_SHARE_PROCESS: return "WIN32_SHARE_PROCESS";
    default: return "?";
    }
}

static const char *start_name(DWORD s)
{
    switch (s) {
    case SERVICE_BOOT_START: return "BOOT_START";
    case SERVICE_SYSTEM_START: return "SYSTEM_START";
    case SERVICE_AUTO_START: return "AUTO_START";
    case SERVICE_DEMAND_START: return "DEMAND_START";
    case SERVICE_DISABLED: return "DISABLED";
    default: return "?";
    }
}

static const char *state_name(DWORD s)
{
    switch (s) {
    case SERVICE_STOPPED: return "STOPPED";
    case SERVICE_START_PENDING: return "START_PENDING";
    case SERVICE_STOP_PENDING: return "STOP_PENDING";
    case SERVICE_RUNNING: return "RUNNING";
    default: return "?";
    }
}

static const char *action_name(SC_ACTION_TYPE t)
{
    switch (t) {
    case SC_ACTION_NONE: return "NONE";
    case SC_ACTION_RESTART: return "RESTART";
    case SC_ACTION_REBOOT: return "REBOOT";
    case SC_ACTION_RUN_COMMAND: return "RUN_COMMAND";
    default: return "?";
    }
}

/* Prints a UTF-16 string as UTF-8. */
static void put_wide(const WCHAR *w)
{
    char out[4096];
    if (!w) return;
    if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, sizeof out, NULL, NULL) > 0)
        fputs(out, stdout);
}

static int qc(const char *name)
{
    SC_HANDLE scm, svc;
    QUERY_SERVICE_CONFIGW *cfg;
    SERVICE_FAILURE_ACTIONSW *fa;
    SERVICE_STATUS st;
    DWORD need = 0, i;
    BYTE buf[16384];
    const WCHAR *dep;

    scm = OpenSCManagerA(NULL, NULL, SC_MANAGER_CONNECT);
    if (!scm) {
        printf("[SC] OpenSCManager FAILED %lu\n", GetLastError());
        return 1;
    }
    svc = OpenServiceA(scm, name, SERVICE_QUERY_CONFIG | SERVICE_QUERY_STATUS);
    if (!svc) {
        DWORD e = GetLastError();
        printf("[SC] OpenService FAILED %lu\n", e);
        CloseServiceHandle(scm);
        return (int)e;
    }
    cfg = (QUERY_SERVICE_CONFIGW *)buf;
    if (!QueryServiceConfigW(svc, cfg, sizeof buf, &need)) {
        printf("[SC] QueryServiceConfig FAILED %lu\n", GetLastError());
        return 1;
    }
    printf("SERVICE_NAME: %s\n", name);
    printf("        TYPE               : %lx  %s\n", cfg->dwServiceType, type_name(cfg->dwServiceType));
    printf("        START_TYPE         : %lu   %s\n", cfg->dwStartType, start_name(cfg->dwStartType));
    printf("        ERROR_CONTROL      : %lu   %s\n", cfg->dwErrorControl,
           cfg->dwErrorControl == SERVICE_ERROR_NORMAL ? "NORMAL" : "OTHER");
    printf("        BINARY_PATH_NAME   : ");
    put_wide(cfg->lpBinaryPathName);
    printf("\n        LOAD_ORDER_GROUP   : ");
    put_wide(cfg->lpLoadOrderGroup);
    printf("\n        DEPENDENCIES       :");
    for (dep = cfg->lpDependencies; dep && *dep; dep += lstrlenW(dep) + 1) {
        printf(" ");
        put_wide(dep);
    }
    printf("\n        SERVICE_START_NAME : ");
    put_wide(cfg->lpServiceStartName);
    printf("\n        DISPLAY_NAME       : ");
    put_wide(cfg->lpDisplayName);
    printf("\n");

    fa = (SERVICE_FAILURE_ACTIONSW *)buf;
    if (QueryServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, buf, sizeof buf, &need)) {
        printf("        RESET_PERIOD       : %lu\n", fa->dwResetPeriod);
        printf("        FAILURE_ACTIONS    :");
        for (i = 0; i < fa->cActions; i++)
            printf(" %s/%lu", action_name(fa->lpsaActions[i].Type), fa->lpsaActions[i].Delay);
        printf("\n");
    } else {
        printf("        FAILURE_ACTIONS    : (QueryServiceConfig2 FAILED %lu)\n", GetLastError());
    }
    if (QueryServiceStatus(svc, &st))
        printf("        STATE              : %lu  %s\n", st.dwCurrentState, state_name(st.dwCurrentState));
    CloseServiceHandle(svc);
    CloseServiceHandle(scm);
    return 0;
}

static int post(const char *pipe, const char *path, int seconds)
{
    char req[512], resp[4096];
    DWORD n, total = 0;
    HANDLE h = INVALID_HANDLE_VALUE;
    int i;

    for (i = 0; i < seconds * 10; i++) {
        h = CreateFileA(pipe, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
        if (h != INVALID_HANDLE_VALUE)
            break;
        if (GetLastError() == ERROR_PIPE_BUSY)
            WaitNamedPipeA(pipe, 100);
        else
            Sleep(100);
    }
    if (h == INVALID_HANDLE_VALUE) {
        printf("cannot open %s: error %lu\n", pipe, GetLastError());
        return 2;
    }
    snprintf(req, sizeof req,
             "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
             "Content-Length: 2\r\nConnection: close\r\n\r\n{}",
             path);
    if (!WriteFile(h, req, (DWORD)strlen(req), &n, NULL)) {
        printf("write: error %lu\n", GetLastError());
        return 3;
    }
    while (total < sizeof resp - 1 && ReadFile(h, resp + total, sizeof resp - 1 - total, &n, NULL) && n > 0) {
        total += n;
        /* One response: stop once the declared body is in. */
        resp[total] = 0;
        {
            char *body = strstr(resp, "\r\n\r\n");
            char *cl = strstr(resp, "content-length: ");
            if (!cl)
                cl = strstr(resp, "Content-Length: ");
            if (body && cl && (DWORD)(body + 4 - resp) + (DWORD)atoi(cl + 16) <= total)
                break;
        }
    }
    resp[total] = 0;
    CloseHandle(h);
    printf("%s\n", resp);
    return total > 0 ? 0 : 4;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "qc"))
        return qc(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "post"))
        return post(argv[2], argv[3], atoi(argv[4]));
    if (argc == 3 && !strcmp(argv[1], "hold")) {
        Sleep((DWORD)atoi(argv[2]) * 1000);
        return 0;
    }
    fprintf(stderr, "usage: probe qc NAME | probe post PIPE PATH SECONDS | probe hold SECONDS\n");
    return 64;
}
