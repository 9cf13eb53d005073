/*
 * Stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks.
 *
 * Rust's std (1.78+) imports ProcessPrng from bcryptprimitives.dll for
 * HashMap seeds and the like, so without this DLL every Rust exe fails to
 * load under Wine (exit 53, "import_dll Library bcryptprimitives.dll ... not
 * found"). Wine does have BCryptGenRandom, which gives the same guarantee.
 * Built and installed into the Wine prefix by scripts/windows/lane.sh.
 */
#include <windows.h>
#include <bcrypt.h>

/* Windows documents it as always returning TRUE. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        /* BCryptGenRandom takes a ULONG length; SIZE_T may be larger. */
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk,
                                            BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
