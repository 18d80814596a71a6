//! menagerie facade (filled in below).
