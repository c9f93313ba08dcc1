#include "gui/main_window.hpp"
