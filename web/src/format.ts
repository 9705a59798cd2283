/** How times read in the views: ISO without the T and the fraction, '–' when there is none. */
export const shortTime = (iso: string | null): string => (iso ? iso.replace('T', ' ').slice(0, 19) : '–');
