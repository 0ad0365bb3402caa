//! HTTP(S) front end.
