pub mod gen;
pub mod vectors;
