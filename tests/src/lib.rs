//! End-to-end and portability tests for okonomi.
