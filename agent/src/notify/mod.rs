//! Telling the application after a swap: a command, a signal, or a supervised child.
