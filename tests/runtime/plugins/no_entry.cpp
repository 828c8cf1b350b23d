// A shared library with no Scion entry point.
extern "C" int not_a_plugin() { return 42; }
