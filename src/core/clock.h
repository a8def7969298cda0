/* Clocks. Durations and times are seconds as doubles, as in the Lua API. */
#ifndef PO_CLOCK_H
#define PO_CLOCK_H

/* Seconds since an arbitrary fixed point; never goes backwards. */
double po_monotonic(void);

/* Seconds since the Unix epoch (wall clock; may jump). */
double po_wallclock(void);

#endif
