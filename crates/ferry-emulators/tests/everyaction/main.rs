//! The EveryAction emulator over real HTTP on loopback, checked against the facts of
//! `../shared/notes/everyaction.md`.

mod common;
mod export;
mod gate;
mod people;
