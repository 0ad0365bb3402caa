//! Files on tmpfs, changed all together through a `..data` symlink swap.
