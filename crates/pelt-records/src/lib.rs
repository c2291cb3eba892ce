//! pelt's results: one record per finished run and the store that keeps a suite's records. Tables,
//! plots and pages (`pelt-report`) read these; sweeps (`pelt-runner`) write them. No libtorch here, so
//! everything that only reads results builds without the model stack.

#![warn(missing_docs)]

mod record;
mod size;
mod store;

pub use record::{test_record, CurvePoint, Record, Status, NUMERICS};
pub use size::DataSize;
pub use store::{file_part, temp_path, write_atomic, Loaded, Store, Unreadable};
