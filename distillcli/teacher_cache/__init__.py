"""The teacher-output store: a teacher's logits for (sample, augmentation epoch), computed once.

``logits.TeacherLogits`` is the one place objectives get the teacher's logits from: the store
or the teacher itself. ``key`` names what the outputs depend on, ``codec`` packs them (float16,
or the top classes plus one fill value for many classes), ``entry_file`` writes and checks one
file per (key, augmentation epoch), ``store`` finds them on disk, ``folders`` lists the keys'
folders and keeps them under a size cap (``distill cache``), ``fill`` computes them ahead of a
run (``distill cache fill``).
"""
