//! Rendering of each format.
