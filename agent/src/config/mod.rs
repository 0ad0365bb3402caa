//! Configuration: flags and the TOML file, parsed raw, then validated into a typed `Config`.
