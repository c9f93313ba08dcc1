#include "gui_test_support.hpp"
