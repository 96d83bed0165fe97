"""The lazy graph: LazyBuffers record computations on views (ShapeTracker); movement ops never copy."""
